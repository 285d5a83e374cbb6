/**
 * A tiny headless browser for tests: a cookie jar and manual redirects over fetch, enough to walk
 * an OAuth connect flow (vault → provider login → vault callback → return_to page) on loopback.
 *
 * Cookies follow RFC 6265 where a test could notice: host-only vs Domain cookies, default and
 * matching paths, Max-Age over Expires, deletion by expiry, and no port in the key (as browsers:
 * 127.0.0.1:3000 and 127.0.0.1:4000 share cookies). Secure cookies go to https and to loopback
 * hosts (browsers treat http://localhost as a secure context). SameSite: every request here is a
 * top-level navigation, so Lax and None cookies are always sent, and Strict ones only when the
 * request comes from the same site: a redirect from another site (the provider sending the user
 * back to a callback) drops them, as browsers do. Ports never make two sites.
 */

export type SameSite = 'strict' | 'lax' | 'none';

export interface Cookie {
  name: string;
  value: string;
  /** Lower-cased host, without a leading dot. */
  domain: string;
  /** True without a Domain attribute: sent to exactly that host only. */
  hostOnly: boolean;
  path: string;
  /** Epoch ms; undefined for a session cookie. */
  expiresAt: number | undefined;
  secure: boolean;
  httpOnly: boolean;
  /** As the server said; undefined when it said nothing (browsers then treat it as lax). */
  sameSite: SameSite | undefined;
}

export interface BrowserResponse {
  url: URL;
  status: number;
  headers: Headers;
  body: string;
}

export interface FollowOptions {
  /**
   * Stop before fetching a redirect target that matches, e.g. the client's redirect_uri when no
   * server listens there. Checked on every Location, not on the starting URL.
   */
  until?: (url: URL) => boolean;
  /** Requests made at most, the first included; default 20. */
  maxHops?: number;
  /** The page the navigation starts from (a link clicked there); default none, as for a typed URL. */
  initiator?: URL;
}

export interface FollowResult {
  /** Where the walk ended: the first non-redirect page, or the Location that matched `until`. */
  url: URL;
  /** The last answer's status: the page's, or the redirect's that pointed at `url` when `until` matched. */
  status: number;
  /** The last answer's body. */
  body: string;
  headers: Headers;
  /** Every URL requested, in order, the first included; `url` is in it unless `until` matched. */
  hops: URL[];
}

export interface BrowserOptions {
  /** Default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Epoch ms, for cookie expiry; default Date.now. */
  now?: () => number;
  /** Sent with every request; default a browser-like Accept so servers answer HTML, not JSON. */
  headers?: Record<string, string>;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;
const DEFAULT_HEADERS = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'user-agent': 'token-vault-test-browser',
};

export class Browser {
  private jar: Cookie[] = [];
  private readonly fetchFn: typeof fetch;
  private readonly now: () => number;
  private readonly headers: Record<string, string>;

  constructor(options: BrowserOptions = {}) {
    this.fetchFn = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.headers = { ...DEFAULT_HEADERS, ...options.headers };
  }

  /** One GET; a redirect is answered as it came (status 3xx, Location in headers). */
  get(url: string | URL, options: { initiator?: URL } = {}): Promise<BrowserResponse> {
    return this.request('GET', new URL(url), undefined, options.initiator);
  }

  /** One urlencoded form POST, as a browser submits a <form method="post">; redirects are not followed. */
  post(url: string | URL, form: Record<string, string> | URLSearchParams, options: { initiator?: URL } = {}): Promise<BrowserResponse> {
    return this.request('POST', new URL(url), new URLSearchParams(form), options.initiator);
  }

  /** GET `url`, then follow redirects as a browser would, storing cookies at each hop. */
  async follow(url: string | URL, options: FollowOptions = {}): Promise<FollowResult> {
    const start = new URL(url);
    return this.walk(await this.get(start, { initiator: options.initiator }), [start], options);
  }

  /** POST a form, then follow the redirects it answers: 303 (and 301/302) continue with GET, 307/308 post the form again. */
  async submit(url: string | URL, form: Record<string, string> | URLSearchParams, options: FollowOptions = {}): Promise<FollowResult> {
    const start = new URL(url);
    const body = new URLSearchParams(form);
    const hops = [start];
    let answer = await this.post(start, body, { initiator: options.initiator });
    const maxHops = options.maxHops ?? 20;
    while (answer.status === 307 || answer.status === 308) {
      const next = locationOf(answer);
      if (options.until?.(next)) return { ...answer, url: next, hops };
      if (hops.length >= maxHops) throw tooManyHops(hops);
      hops.push(next);
      answer = await this.post(next, body, { initiator: answer.url });
    }
    return this.walk(answer, hops, options);
  }

  /** The cookies this browser would send to `url`, most specific path first. */
  cookies(url: string | URL): Cookie[] {
    return this.matching(new URL(url), undefined).map((c) => ({ ...c }));
  }

  /** Every live cookie in the jar, for any host. */
  allCookies(): Cookie[] {
    this.expire();
    return this.jar.map((c) => ({ ...c }));
  }

  /** Sets a cookie as if `url` had answered this Set-Cookie header. */
  setCookie(url: string | URL, header: string): void {
    this.store(new URL(url), header);
  }

  clearCookies(): void {
    this.jar = [];
  }

  private async walk(first: BrowserResponse, hops: URL[], options: FollowOptions): Promise<FollowResult> {
    const maxHops = options.maxHops ?? 20;
    let answer = first;
    while (REDIRECTS.has(answer.status)) {
      const next = locationOf(answer);
      if (options.until?.(next)) return { ...answer, url: next, hops };
      if (hops.length >= maxHops) throw tooManyHops(hops);
      hops.push(next);
      answer = await this.get(next, { initiator: answer.url });
    }
    return { ...answer, hops };
  }

  private async request(method: string, url: URL, body: URLSearchParams | undefined, initiator: URL | undefined): Promise<BrowserResponse> {
    const headers: Record<string, string> = { ...this.headers };
    const cookie = this.matching(url, initiator)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    if (cookie) headers.cookie = cookie;
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await this.fetchFn(url, { method, headers, body: body?.toString(), redirect: 'manual' });
    for (const header of res.headers.getSetCookie()) this.store(url, header);
    return { url, status: res.status, headers: res.headers, body: await res.text() };
  }

  private matching(url: URL, initiator: URL | undefined): Cookie[] {
    this.expire();
    const host = url.hostname.toLowerCase();
    const secureContext = url.protocol === 'https:' || LOOPBACK.test(host);
    const crossSite = initiator !== undefined && siteOf(initiator) !== siteOf(url);
    return this.jar
      .filter((c) => (c.hostOnly ? c.domain === host : domainMatches(host, c.domain)))
      .filter((c) => pathMatches(url.pathname, c.path))
      .filter((c) => !c.secure || secureContext)
      .filter((c) => !(crossSite && c.sameSite === 'strict'))
      .sort((a, b) => b.path.length - a.path.length);
  }

  private expire(): void {
    const now = this.now();
    this.jar = this.jar.filter((c) => c.expiresAt === undefined || c.expiresAt > now);
  }

  private store(url: URL, header: string): void {
    const cookie = parseSetCookie(header, url, this.now());
    if (!cookie) return;
    this.jar = this.jar.filter((c) => !(c.name === cookie.name && c.domain === cookie.domain && c.path === cookie.path));
    if (cookie.expiresAt === undefined || cookie.expiresAt > this.now()) this.jar.push(cookie);
  }
}

/** RFC 6265 §5.2, minus the parts browsers never needed on loopback. Undefined when the cookie must be ignored. */
export function parseSetCookie(header: string, url: URL, now: number): Cookie | undefined {
  const [pair = '', ...attributes] = header.split(';');
  const eq = pair.indexOf('=');
  if (eq < 0) return undefined;
  const name = pair.slice(0, eq).trim();
  const value = pair.slice(eq + 1).trim();
  if (name === '') return undefined;

  const host = url.hostname.toLowerCase();
  const cookie: Cookie = {
    name,
    value,
    domain: host,
    hostOnly: true,
    path: defaultPath(url.pathname),
    expiresAt: undefined,
    secure: false,
    httpOnly: false,
    sameSite: undefined,
  };
  let maxAge: number | undefined;
  let expires: number | undefined;
  for (const attribute of attributes) {
    const at = attribute.indexOf('=');
    const key = (at < 0 ? attribute : attribute.slice(0, at)).trim().toLowerCase();
    const val = at < 0 ? '' : attribute.slice(at + 1).trim();
    switch (key) {
      case 'domain': {
        const domain = val.replace(/^\./, '').toLowerCase();
        if (domain === '') break;
        // An IP address or another site's domain: the whole cookie is rejected, as browsers do.
        if (!domainMatches(host, domain)) return undefined;
        cookie.domain = domain;
        cookie.hostOnly = false;
        break;
      }
      case 'path':
        if (val.startsWith('/')) cookie.path = val;
        break;
      case 'max-age':
        if (/^-?\d+$/.test(val)) maxAge = Number(val);
        break;
      case 'expires': {
        const at = Date.parse(val);
        if (!Number.isNaN(at)) expires = at;
        break;
      }
      case 'secure':
        cookie.secure = true;
        break;
      case 'httponly':
        cookie.httpOnly = true;
        break;
      case 'samesite': {
        const mode = val.toLowerCase();
        if (mode === 'strict' || mode === 'lax' || mode === 'none') cookie.sameSite = mode;
        break;
      }
      default:
        break;
    }
  }
  // Max-Age wins over Expires; zero or less means already expired.
  if (maxAge !== undefined) cookie.expiresAt = maxAge <= 0 ? 0 : now + maxAge * 1000;
  else if (expires !== undefined) cookie.expiresAt = expires;
  return cookie;
}

/** RFC 6265 §5.1.4: the request path up to, not including, its last slash; '/' at least. */
function defaultPath(path: string): string {
  if (!path.startsWith('/')) return '/';
  const last = path.lastIndexOf('/');
  return last <= 0 ? '/' : path.slice(0, last);
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

/** RFC 6265 §5.1.3: equal, or a dot-suffix of a host name (never of an IP address). */
function domainMatches(host: string, domain: string): boolean {
  if (host === domain) return true;
  return host.endsWith(`.${domain}`) && !isIp(host);
}

function isIp(host: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.startsWith('[');
}

/** Close enough to a registrable domain for tests: an IP or localhost is its own site, a name counts by its last two labels. */
function siteOf(url: URL): string {
  const host = url.hostname.toLowerCase();
  if (isIp(host)) return host;
  return host.split('.').slice(-2).join('.');
}

function locationOf(answer: BrowserResponse): URL {
  const location = answer.headers.get('location');
  if (!location) throw new Error(`${answer.status} from ${answer.url.href} has no Location`);
  return new URL(location, answer.url);
}

function tooManyHops(hops: URL[]): Error {
  return new Error(`more than ${hops.length} requests following redirects:\n${hops.map((u) => `  ${u.href}`).join('\n')}`);
}

export interface HtmlForm {
  /** Absolute, resolved against the page; the page itself when the form has no action. */
  action: URL;
  method: 'get' | 'post';
  /** Every named <input> with its value (hidden fields included), in document order; the last wins for a repeated name. */
  fields: Record<string, string>;
}

/**
 * The forms of an HTML page, read with regular expressions: enough for the plain pages test
 * servers render (no nested forms, attributes quoted), not a general HTML parser.
 */
export function parseForms(html: string, pageUrl: URL): HtmlForm[] {
  const forms: HtmlForm[] = [];
  for (const match of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributesOf(match[1] ?? '');
    const fields: Record<string, string> = {};
    for (const input of (match[2] ?? '').matchAll(/<input\b([^>]*?)\/?>/gi)) {
      const inputAttrs = attributesOf(input[1] ?? '');
      if (inputAttrs.name !== undefined) fields[inputAttrs.name] = inputAttrs.value ?? '';
    }
    forms.push({
      action: new URL(attrs.action ?? '', pageUrl),
      method: attrs.method?.toLowerCase() === 'post' ? 'post' : 'get',
      fields,
    });
  }
  return forms;
}

function attributesOf(source: string): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const m of source.matchAll(/([a-zA-Z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))/g)) {
    const key = (m[1] ?? '').toLowerCase();
    attrs[key] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

function decodeEntities(text: string): string {
  return text
    .replace(/&#(\d+);/g, (_m, code: string) => String.fromCodePoint(Number(code)))
    .replace(/&#x([0-9a-f]+);/gi, (_m, code: string) => String.fromCodePoint(parseInt(code, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}
