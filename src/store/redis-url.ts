/**
 * Redis addresses as the configuration gives them. A URL may carry a password, so nothing here
 * ever quotes one back: problems name what is wrong, never the value.
 */
export interface RedisAddress {
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  tls: boolean;
  /** The database number of the URL's path (0 when it has none). */
  db: number;
}

export type ParsedRedisUrl = RedisAddress | { problem: string };

/** `redis://[user[:password]@]host[:port][/db]` or `rediss://...` (TLS). */
export function parseRedisUrl(text: string): ParsedRedisUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { problem: 'is not a URL (redis://[user:password@]host:port)' };
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return { problem: 'must be a redis:// or rediss:// URL' };
  if (url.hostname === '') return { problem: 'names no host' };
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path)) return { problem: 'its path must be a database number' };
  if (url.search !== '' || url.hash !== '') return { problem: 'must have no query or fragment' };
  return {
    // URL keeps IPv6 literals in brackets; sockets want them bare.
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 6379 : Number(url.port),
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    tls: url.protocol === 'rediss:',
    db: path === '' ? 0 : Number(path),
  };
}

/** A list of URLs in one value (an environment variable holding every seed node), comma-separated. */
export function splitUrlList(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

/** `host:port`, `[v6]:port`, `host` (port `defaultPort`), or a redis(s):// URL without credentials. */
export function parseHostPort(text: string, defaultPort: number): { host: string; port: number; tls: boolean | undefined } | { problem: string } {
  if (/^rediss?:\/\//.test(text)) {
    const url = parseRedisUrl(text);
    if ('problem' in url) return url;
    if (url.username !== undefined || url.password !== undefined) return { problem: 'must carry no credentials (give them as sentinelUsername / sentinelPassword)' };
    // A URL without a port means the default port of what it names (26379 for a sentinel), not 6379.
    return { host: url.host, port: new URL(text).port === '' ? defaultPort : url.port, tls: url.tls };
  }
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$/.exec(text);
  if (!match) return { problem: 'must be host:port or a redis:// URL' };
  const port = match[3] === undefined ? defaultPort : Number(match[3]);
  if (port < 1 || port > 65535) return { problem: 'has no valid port' };
  return { host: (match[1] ?? match[2])!, port, tls: undefined };
}
