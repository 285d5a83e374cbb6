import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CallerKeys } from './app';
import { Browser, type FollowResult } from './browser';

/**
 * Helpers for the connect-flow tests (test/integration/connect/): the callers they act as, a
 * vault listening on its publicUrl port, the provider traffic the vault sent and received, a
 * browser walk from the start URL to return_to, and a dump of every Redis value.
 */

/**
 * The callers of the connect tests, on the keys startVault generates (CallerKeys is named after
 * the standard callers; here the same keys serve these roles):
 *   portal        starts flows, reads and writes tokens, signs OAuth1 requests   (keys.admin)
 *   other-portal  starts flows too, but did not start the test's flows            (keys.reader)
 *   backend       reads and writes tokens, may not start flows                    (keys.writer)
 */
export function connectCallers(keys: CallerKeys): Record<string, unknown>[] {
  return [
    { name: 'portal', key: keys.admin, scopes: ['connect', 'tokens:read', 'tokens:write', 'tokens:sign'], providers: ['*'] },
    { name: 'other-portal', key: keys.reader, scopes: ['connect'], providers: ['*'] },
    { name: 'backend', key: keys.writer, scopes: ['tokens:read', 'tokens:write'], providers: ['*'] },
  ];
}

/** `Authorization` header values of connectCallers(). */
export function connectAuth(keys: CallerKeys): { portal: string; otherPortal: string; backend: string } {
  return { portal: `Bearer ${keys.admin}`, otherPortal: `Bearer ${keys.reader}`, backend: `Bearer ${keys.writer}` };
}

/** An http server for `handler` on 127.0.0.1:`port` (0: any free port). */
export async function listen(handler: RequestListener, port = 0): Promise<Server> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

/** Closes a server and its keep-alive connections. */
export async function closeServer(server: Server | undefined): Promise<void> {
  if (!server?.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

/** One provider call the vault made, with the answer it got. */
export interface ProviderExchange {
  method: string;
  url: URL;
  /** Lower-cased names. */
  headers: Record<string, string>;
  /** The request body as sent ('' without one). */
  body: string;
  status: number;
  /** The answer's body, read from a clone: the vault reads the original. */
  answer: string;
}

/** Field names whose values are secrets, in request bodies and in answers (JSON or form-encoded). */
const SECRET_FIELDS = new Set([
  'code',
  'code_verifier',
  'client_secret',
  'refresh_token',
  'access_token',
  'id_token',
  'device_code',
  'oauth_token',
  'oauth_token_secret',
  'oauth_verifier',
]);

/**
 * The vault's provider HTTP client (createDeps `fetch`): the real fetch, with every exchange
 * recorded, so a test can see what the vault sent and what the provider answered (token values
 * included, which the provider servers do not expose).
 */
export class ProviderTraffic {
  readonly exchanges: ProviderExchange[] = [];

  readonly fetch: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const response = await fetch(input, init);
    const answer = await response
      .clone()
      .text()
      .catch(() => '');
    this.exchanges.push({
      method: init?.method ?? 'GET',
      url,
      headers: Object.fromEntries(new Headers(init?.headers).entries()),
      body: typeof init?.body === 'string' ? init.body : '',
      status: response.status,
      answer,
    });
    return response;
  };

  /** The exchanges with a URL whose path is `pathname`, oldest first. */
  to(pathname: string): ProviderExchange[] {
    return this.exchanges.filter((exchange) => exchange.url.pathname === pathname);
  }

  /** The answer of an exchange as fields: JSON objects or form-encoded bodies. */
  static fields(text: string): Record<string, string> {
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        return Object.fromEntries(Object.entries(parsed).map(([name, value]) => [name, String(value)]));
      }
    } catch {
      // not JSON: form-encoded
    }
    return Object.fromEntries(new URLSearchParams(text));
  }

  /**
   * Every secret that crossed the wire between the vault and a provider: codes, verifiers, client
   * secrets, tokens (request and answer bodies), Authorization header credentials and signatures,
   * by label.
   */
  secrets(): Map<string, string> {
    const found = new Map<string, string>();
    this.exchanges.forEach((exchange, i) => {
      const where = `${exchange.method} ${exchange.url.pathname} #${i}`;
      for (const [side, text] of [['request', exchange.body], ['answer', exchange.answer]] as const) {
        for (const [name, value] of Object.entries(ProviderTraffic.fields(text))) {
          if (SECRET_FIELDS.has(name) && value.length >= 8) found.set(`${where} ${side} ${name}`, value);
        }
      }
      const authorization = exchange.headers.authorization;
      if (authorization?.startsWith('Basic ')) found.set(`${where} Basic credentials`, authorization.slice(6));
      if (authorization?.startsWith('Bearer ')) found.set(`${where} bearer token`, authorization.slice(7));
      if (authorization?.startsWith('OAuth ')) {
        for (const match of authorization.matchAll(/(oauth_token|oauth_verifier|oauth_signature)="([^"]*)"/g)) {
          found.set(`${where} ${match[1]!}`, decodeURIComponent(match[2]!));
        }
      }
    });
    return found;
  }

  clear(): void {
    this.exchanges.length = 0;
  }
}

/** A browser's walk through a connect flow, from the vault's start URL. */
export interface BrowserFlow {
  browser: Browser;
  /** Where the walk ended: return_to with the outcome (not requested), or the page that was no redirect (the vault's 400). */
  end: FollowResult;
  /** return_to's query when the walk got there, else null. */
  outcome: Record<string, string> | null;
  /** Where /connect/start sent the browser (the provider's authorization URL). */
  providerUrl: URL | undefined;
  /** The vault callback (a /callback/ path) the provider sent the browser back to, when it did. */
  callbackUrl: URL | undefined;
}

/**
 * Opens `startUrl` in `browser` and follows every redirect until return_to (`returnOrigin`, where
 * nothing listens) or a page that is not a redirect.
 */
export async function walkFlow(startUrl: string | URL, returnOrigin: string, browser = new Browser()): Promise<BrowserFlow> {
  const start = new URL(startUrl);
  const end = await browser.follow(start, { until: (url) => url.origin === returnOrigin });
  return {
    browser,
    end,
    outcome: end.url.origin === returnOrigin ? Object.fromEntries(end.url.searchParams) : null,
    providerUrl: end.hops[1],
    callbackUrl: end.hops.find((hop) => hop.pathname.startsWith('/callback/')),
  };
}

/**
 * A provider API's "who am I" endpoint, as GitHub's GET /user is for GitHub: it accepts the
 * access tokens of an OAuth server (checked there by RFC 7662 introspection) and answers
 * `{ sub, scope }` of the token's subject; 401 for a token the server does not honour.
 */
export class WhoAmIServer {
  /** The bearer tokens presented, oldest first. */
  readonly tokens: string[] = [];

  private server: Server | undefined;

  private constructor(private readonly introspection: { url: string; clientId: string; clientSecret: string }) {}

  static async start(introspection: { url: string; clientId: string; clientSecret: string }): Promise<WhoAmIServer> {
    const whoami = new WhoAmIServer(introspection);
    whoami.server = await listen((req, res) => {
      whoami.answer(req, res).catch(() => res.destroy());
    });
    return whoami;
  }

  get url(): string {
    if (!this.server) throw new Error('WhoAmIServer: start() first');
    return `http://127.0.0.1:${portOf(this.server)}/user`;
  }

  stop(): Promise<void> {
    return closeServer(this.server);
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token) this.tokens.push(token);
    const basic = Buffer.from(`${this.introspection.clientId}:${this.introspection.clientSecret}`).toString('base64');
    const introspected = token
      ? ((await (
          await fetch(this.introspection.url, {
            method: 'POST',
            headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
            body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
          })
        ).json()) as { active?: boolean; sub?: string; scope?: string })
      : { active: false };
    const [status, body] = introspected.active ? [200, { sub: introspected.sub, scope: introspected.scope }] : [401, { message: 'Bad credentials' }];
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }
}
