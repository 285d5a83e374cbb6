import { spawn, type ChildProcess } from 'node:child_process';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { Browser, parseForms, type FollowResult } from '../browser';
import { freePort } from '../redis-server';

const SCRIPT = join(__dirname, 'oidc-server.mjs');
const START_TIMEOUT_MS = 10_000;
/** Registered for basic-client and post-client by the server itself; nothing listens there. */
const DEFAULT_REDIRECT_URI = 'http://127.0.0.1/callback';

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export interface OidcServerOptions {
  /** Access-token lifetime (expires_in) in seconds, for user and client-credentials tokens; default 3600. */
  accessTtlSeconds?: number;
  /** Refresh-token rotation with reuse detection; default true. */
  rotation?: boolean;
  /**
   * Redirect URIs registered for basic-client and post-client besides http://127.0.0.1/callback,
   * e.g. `http://127.0.0.1:${vaultPort}/callback/oidc`. oidc-provider compares them exactly.
   */
  redirectUris?: string[];
  /**
   * The `interval` of device authorization answers. Default: none in the answer, as
   * oidc-provider 9 sends it, so an RFC 8628 client waits 5 s between polls.
   */
  deviceIntervalSeconds?: number;
}

export type OidcClientName = 'basic' | 'post' | 'cc';

/** What the scripted user does at the next login (POST /__test/login). */
export interface NextLogin {
  /** Log in as this account; default a fresh `user-N`. */
  accountId?: string;
  /** Deny instead: the flow ends with access_denied. */
  deny?: boolean;
}

/** The state of the last device page (its data-outcome). */
export type DeviceOutcome =
  | 'approved'
  | 'denied'
  | 'code-not-found'
  | 'code-expired'
  | 'code-already-used'
  | 'no-code'
  | 'error'
  | 'enter-code'
  | 'confirm-code';

export interface DeviceApproval {
  outcome: DeviceOutcome;
  /** The last page. */
  status: number;
  body: string;
  /** Every URL the browser requested, in order. */
  hops: URL[];
}

export interface OidcClient {
  id: string;
  secret: string;
}

export interface IssueOptions {
  /** Default: a fresh `user-N`. */
  accountId?: string;
  /** Default 'openid offline_access'. */
  scope?: string;
  /** Default 'basic-client'. */
  clientId?: string;
}

export interface IssuedTokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  account_id: string;
}

export interface OidcCalls {
  /** Every request to the token endpoint, whatever the mode. */
  token: { total: number };
  /** Outcomes of refresh_token grants that reached oidc-provider (events grant.success / grant.error). */
  refresh: {
    total: number;
    success: number;
    /** By OAuth error code: invalid_grant, invalid_client, ... */
    errors: Record<string, number>;
    /** By oidc-provider's error_detail: 'refresh token already used', 'refresh token not found', ... */
    details: Record<string, number>;
  };
  revocation: { total: number; success: number; errors: Record<string, number> };
  /** Requests the wrapper answered itself ('status') or held ('hang'), all endpoints together. */
  injected: number;
  /** Interaction pages answered by the scripted user: logins, consents, denials. */
  interactions: { login: number; consent: number; denied: number };
}

export interface RecordedTokenRequest {
  method: string;
  /** '/token', '/token/revocation' or '/device/auth'. */
  path: string;
  /** Lower-cased, as node:http parses them; authorization included. */
  headers: IncomingHttpHeaders;
  /** The urlencoded body, parsed (the last value wins for a repeated name). */
  form: Record<string, string>;
  /** The raw body. */
  body: string;
  /** Epoch milliseconds when the wrapper received it. */
  receivedAt: number;
}

/**
 * How the wrapper answers POST /token (or, with `endpoint: 'revocation'`, POST /token/revocation;
 * with `endpoint: 'device_authorization'`, POST /device/auth); `times` limits it to the next N
 * requests to that endpoint. One mode per endpoint: setting one replaces the last.
 *
 * `grantType` (token endpoint only) applies the mode to token requests of that grant_type alone,
 * and only those count against `times`; others reach oidc-provider. Examples:
 *
 *   // RFC 8628 slow_down for the next 2 polls (oidc-provider never answers slow_down itself)
 *   { mode: 'status', status: 400, body: { error: 'slow_down' }, grantType: DEVICE_CODE_GRANT, times: 2 }
 *   // the code exchange fails, refreshes still work
 *   { mode: 'status', status: 400, body: { error: 'invalid_grant' }, grantType: 'authorization_code', times: 1 }
 */
export type OidcMode = ({ mode: 'normal' } | OidcFailure) & { endpoint?: 'token' | 'revocation' | 'device_authorization' };

type OidcFailure =
  | {
      mode: 'status';
      status: number;
      /** Sent as the Retry-After header. */
      retryAfter?: number | string;
      /** Extra headers, e.g. Location for a redirect or WWW-Authenticate. */
      headers?: Record<string, string>;
      /** An object is JSON-encoded, or form-encoded when contentType is urlencoded; a string is sent as is. Omitted: empty body. */
      body?: object | string;
      /** Default application/json when there is a body. */
      contentType?: string;
      /** Wait this long before answering. */
      delayMs?: number;
      times?: number;
      grantType?: string;
    }
  | { mode: 'slow'; delayMs: number; times?: number; grantType?: string }
  | { mode: 'hang'; times?: number; grantType?: string };

export interface TokenResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** The endpoints of the discovery document that tests use. */
interface Endpoints {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  revocation_endpoint: string;
  introspection_endpoint: string;
  userinfo_endpoint: string;
  device_authorization_endpoint: string;
  jwks_uri: string;
}

/**
 * A real oidc-provider 9 OAuth server in a child process (oidc-provider is ESM-only), with
 * clients `basic-client` (client_secret_basic) and `post-client` (client_secret_post) for
 * authorization code + PKCE (S256, required), refresh with rotation and the device grant, and
 * `cc-client` (client_secret_basic) for client credentials; test-control routes issue tokens,
 * script the user's login and inject failures.
 *
 * The login page is scripted: the next interaction logs in as the account set by login()
 * (default a fresh `user-N`) and consents to everything asked, or denies. Scopes: openid,
 * offline_access, email (claims email, email_verified = `<account>@example.test`, true); cc-client
 * gets api:read / api:write for the resource https://api.example.test/. offline_access is dropped
 * from authorization requests without prompt=consent (oidc-provider's rule), yet every grant gets
 * a refresh token here.
 */
export class OidcServer {
  readonly clients = {
    basic: { id: 'basic-client', secret: 'basic-secret' },
    post: { id: 'post-client', secret: 'post-secret' },
    cc: { id: 'cc-client', secret: 'cc-secret' },
  } as const satisfies Record<OidcClientName, OidcClient>;

  /** Registered for basic-client and post-client whatever the options; nothing listens there. */
  readonly defaultRedirectUri = DEFAULT_REDIRECT_URI;

  private stopped: Promise<void> | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly endpoints: Endpoints,
    /** Every redirect URI registered for basic-client and post-client. */
    readonly redirectUris: readonly string[],
    private readonly output: { stderr: string },
  ) {}

  get issuer(): string {
    return this.endpoints.issuer;
  }

  get authorizationUrl(): string {
    return this.endpoints.authorization_endpoint;
  }

  get tokenUrl(): string {
    return this.endpoints.token_endpoint;
  }

  get revocationUrl(): string {
    return this.endpoints.revocation_endpoint;
  }

  get introspectionUrl(): string {
    return this.endpoints.introspection_endpoint;
  }

  /** oidc-provider's /me: GET with `Authorization: Bearer <access token>` answers { sub, email?, ... }. */
  get userinfoUrl(): string {
    return this.endpoints.userinfo_endpoint;
  }

  /** RFC 8628 device authorization endpoint (/device/auth). */
  get deviceAuthorizationUrl(): string {
    return this.endpoints.device_authorization_endpoint;
  }

  /** Where the user enters the code (/device): the verification_uri of device authorization answers. */
  get deviceVerificationUrl(): string {
    return `${this.issuer}/device`;
  }

  get jwksUrl(): string {
    return this.endpoints.jwks_uri;
  }

  static async start(options: OidcServerOptions = {}): Promise<OidcServer> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await OidcServer.boot(await freePort(), options);
      } catch (err) {
        // freePort can race with another process taking the port: try another one.
        if (attempt >= 4) throw err;
      }
    }
  }

  /** Everything the child wrote to stderr (warnings, server errors). */
  get stderr(): string {
    return this.output.stderr;
  }

  /** Creates a grant with an access token and a refresh token, as a finished authorization-code flow would. */
  issue(options: IssueOptions = {}): Promise<IssuedTokens> {
    return this.control<IssuedTokens>('POST', '/__test/issue', options);
  }

  calls(): Promise<OidcCalls> {
    return this.control<OidcCalls>('GET', '/__test/calls');
  }

  /** Every request to the token, revocation and device authorization endpoints since the last clear or reset. */
  requests(): Promise<RecordedTokenRequest[]> {
    return this.control<RecordedTokenRequest[]>('GET', '/__test/requests');
  }

  async clearRequests(): Promise<void> {
    await this.control('DELETE', '/__test/requests');
  }

  async mode(mode: OidcMode): Promise<void> {
    await this.control('POST', '/__test/mode', mode);
  }

  /**
   * Scripts the next interaction (the login page of an authorization or device flow): log in as
   * `accountId`, or `deny`. Used up by that login, or by the first interaction when denying. A
   * browser that already has a session at the provider skips the login: it goes straight to
   * consent, with the session's account, and the script waits for the next login.
   */
  async login(next: NextLogin): Promise<void> {
    await this.control('POST', '/__test/login', next);
  }

  /**
   * The user's half of the device flow, in a fresh browser over the real /device pages: opens the
   * verification page, submits the code with the page's xsrf field, confirms, goes through the
   * scripted login (`next`, as for login(); default the script already set, or a fresh user-N) and
   * ends on the success page ('approved') or a page naming what went wrong ('denied',
   * 'code-not-found', ...). The device's next poll then answers tokens or access_denied.
   */
  async approveDevice(userCode: string, next?: NextLogin): Promise<DeviceApproval> {
    if (next) await this.login(next);
    const browser = new Browser();
    const hops: URL[] = [];
    const visit = async (page: Promise<FollowResult>) => {
      const answer = await page;
      hops.push(...answer.hops);
      const outcome = deviceOutcome(answer.body);
      return { outcome, status: answer.status, body: answer.body, hops, form: parseForms(answer.body, answer.url)[0] };
    };
    const result = ({ outcome, status, body }: DeviceApproval) => ({ outcome, status, body, hops });

    const entry = await visit(browser.follow(this.deviceVerificationUrl));
    if (entry.outcome !== 'enter-code' || !entry.form) throw new Error(`GET /device did not answer the code form:\n${entry.body}`);
    const confirm = await visit(browser.submit(entry.form.action, { ...entry.form.fields, user_code: userCode }));
    if (confirm.outcome !== 'confirm-code' || !confirm.form) {
      // The scripted login was not reached: do not leave it for another flow.
      if (next) await this.login({});
      return result(confirm);
    }
    return result(await visit(browser.submit(confirm.form.action, confirm.form.fields)));
  }

  /** Mode normal, login script cleared, counters and recorded requests cleared, hung requests dropped; tokens stay. */
  async reset(): Promise<void> {
    await this.control('POST', '/__test/reset');
  }

  /** A refresh_token grant as an RFC 6749 §6 client sends it (for scenarios outside the vault). */
  refresh(refreshToken: string, client: OidcClientName = 'basic'): Promise<TokenResponse> {
    return this.post(this.tokenUrl, { grant_type: 'refresh_token', refresh_token: refreshToken }, client);
  }

  /** RFC 7662 introspection: whether the provider still honours a token. */
  async active(token: string, client: OidcClientName = 'basic'): Promise<boolean> {
    const answer = await this.post(this.introspectionUrl, { token }, client);
    return answer.body.active === true;
  }

  /** RFC 7009 revocation; revoking either token of a grant revokes the whole grant. */
  revoke(token: string, client: OidcClientName = 'basic'): Promise<TokenResponse> {
    return this.post(this.revocationUrl, { token }, client);
  }

  /** SIGTERM, then waits for the exit. Safe to call twice. */
  stop(): Promise<void> {
    this.stopped ??= this.terminate('SIGTERM');
    return this.stopped;
  }

  /** SIGKILL: the provider dies at once, as in a crash. */
  kill(): Promise<void> {
    this.stopped ??= this.terminate('SIGKILL');
    return this.stopped;
  }

  private static async boot(port: number, options: OidcServerOptions): Promise<OidcServer> {
    const args = [SCRIPT, String(port), '--access-ttl', String(options.accessTtlSeconds ?? 3600), '--exit-with-stdin'];
    if (options.rotation === false) args.push('--no-rotation');
    for (const uri of options.redirectUris ?? []) args.push('--redirect-uri', uri);
    if (options.deviceIntervalSeconds !== undefined) args.push('--device-interval', String(options.deviceIntervalSeconds));
    // stdin is a pipe only so that the child exits when this process dies without stopping it.
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const output = { stderr: '' };
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => (output.stderr += chunk));

    try {
      await waitForReady(child, port, output);
    } catch (err) {
      await terminate(child, 'SIGKILL');
      throw err;
    }
    const issuer = `http://127.0.0.1:${port}`;
    try {
      const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      const names: (keyof Endpoints)[] = [
        'issuer',
        'authorization_endpoint',
        'token_endpoint',
        'revocation_endpoint',
        'introspection_endpoint',
        'userinfo_endpoint',
        'device_authorization_endpoint',
        'jwks_uri',
      ];
      if (discovery.issuer !== issuer || names.some((name) => typeof discovery[name] !== 'string')) {
        throw new Error(`unexpected discovery document: ${JSON.stringify(discovery)}`);
      }
      const redirectUris = [...new Set([DEFAULT_REDIRECT_URI, ...(options.redirectUris ?? [])])];
      return new OidcServer(child, port, discovery as unknown as Endpoints, redirectUris, output);
    } catch (err) {
      await terminate(child, 'SIGKILL');
      throw err;
    }
  }

  private async control<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.issuer}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}\n${this.output.stderr.slice(-2000)}`);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  private async post(url: string, form: Record<string, string>, clientName: OidcClientName): Promise<TokenResponse> {
    const client = this.clients[clientName];
    const params = new URLSearchParams(form);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (clientName !== 'post') {
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64')}`;
    } else {
      params.set('client_id', client.id);
      params.set('client_secret', client.secret);
    }
    const res = await fetch(url, { method: 'POST', headers, body: params.toString(), redirect: 'manual' });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  }

  private terminate(signal: NodeJS.Signals): Promise<void> {
    return terminate(this.child, signal);
  }
}

const DEVICE_OUTCOMES = new Set<string>([
  'approved',
  'denied',
  'code-not-found',
  'code-expired',
  'code-already-used',
  'no-code',
  'error',
  'enter-code',
  'confirm-code',
] satisfies DeviceOutcome[]);

/** The data-outcome the test server's device pages carry (see oidc-server.mjs). */
function deviceOutcome(html: string): DeviceOutcome {
  const outcome = /data-outcome="([^"]+)"/.exec(html)?.[1];
  if (outcome === undefined || !DEVICE_OUTCOMES.has(outcome)) throw new Error(`not a device page:
${html.slice(0, 2000)}`);
  return outcome as DeviceOutcome;
}

function waitForReady(child: ChildProcess, port: number, output: { stderr: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    const fail = (reason: string) => {
      cleanup();
      reject(new Error(`oidc test server on port ${port} ${reason}\n${output.stderr.slice(-2000)}`));
    };
    const onData = (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.split('\n').includes(`ready ${port}`)) {
        cleanup();
        child.stdout?.resume();
        resolve();
      }
    };
    const onExit = (code: number | null, signal: string | null) => fail(`exited (code ${code}, signal ${signal}) before ready`);
    const timer = setTimeout(() => fail(`not ready after ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    // A child that ignores SIGTERM must not hang the test run.
    const force = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(force);
  }
  child.stdin?.destroy();
  child.stdout?.destroy();
  child.stderr?.destroy();
}
