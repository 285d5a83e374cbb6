import { spawn, type ChildProcess } from 'node:child_process';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { freePort } from '../redis-server';

const SCRIPT = join(__dirname, 'oidc-server.mjs');
const START_TIMEOUT_MS = 10_000;

export interface OidcServerOptions {
  /** Access-token lifetime (expires_in) in seconds; default 3600. */
  accessTtlSeconds?: number;
  /** Refresh-token rotation with reuse detection; default true. */
  rotation?: boolean;
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
  /** Token requests the wrapper answered itself ('status') or held ('hang'). */
  injected: number;
}

export interface RecordedTokenRequest {
  method: string;
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
 * How the wrapper answers POST /token (or, with `endpoint: 'revocation'`, POST
 * /token/revocation); `times` limits it to the next N requests to that endpoint.
 */
export type OidcMode = ({ mode: 'normal' } | OidcFailure) & { endpoint?: 'token' | 'revocation' };

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
    }
  | { mode: 'slow'; delayMs: number; times?: number }
  | { mode: 'hang'; times?: number };

export interface TokenResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/**
 * A real oidc-provider 9 OAuth server in a child process (oidc-provider is ESM-only), with
 * clients `basic-client` (client_secret_basic) and `post-client` (client_secret_post),
 * refresh-token rotation, and test-control routes to issue tokens and inject failures.
 */
export class OidcServer {
  readonly clients = {
    basic: { id: 'basic-client', secret: 'basic-secret' },
    post: { id: 'post-client', secret: 'post-secret' },
  } as const satisfies Record<string, OidcClient>;

  private stopped: Promise<void> | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly issuer: string,
    readonly tokenUrl: string,
    readonly revocationUrl: string,
    private readonly output: { stderr: string },
  ) {}

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

  /** Every request that reached the token endpoint since the last clear or reset. */
  requests(): Promise<RecordedTokenRequest[]> {
    return this.control<RecordedTokenRequest[]>('GET', '/__test/requests');
  }

  async clearRequests(): Promise<void> {
    await this.control('DELETE', '/__test/requests');
  }

  async mode(mode: OidcMode): Promise<void> {
    await this.control('POST', '/__test/mode', mode);
  }

  /** Mode normal, counters and recorded requests cleared, hung requests dropped; tokens stay. */
  async reset(): Promise<void> {
    await this.control('POST', '/__test/reset');
  }

  /** A refresh_token grant as an RFC 6749 §6 client sends it (for scenarios outside the vault). */
  refresh(refreshToken: string, client: 'basic' | 'post' = 'basic'): Promise<TokenResponse> {
    return this.post(this.tokenUrl, { grant_type: 'refresh_token', refresh_token: refreshToken }, client);
  }

  /** RFC 7662 introspection: whether the provider still honours a token. */
  async active(token: string, client: 'basic' | 'post' = 'basic'): Promise<boolean> {
    const answer = await this.post(`${this.issuer}/token/introspection`, { token }, client);
    return answer.body.active === true;
  }

  /** RFC 7009 revocation; revoking either token of a grant revokes the whole grant. */
  revoke(token: string, client: 'basic' | 'post' = 'basic'): Promise<TokenResponse> {
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
      const tokenUrl = discovery.token_endpoint;
      const revocationUrl = discovery.revocation_endpoint;
      if (discovery.issuer !== issuer || typeof tokenUrl !== 'string' || typeof revocationUrl !== 'string') {
        throw new Error(`unexpected discovery document: ${JSON.stringify(discovery)}`);
      }
      return new OidcServer(child, port, issuer, tokenUrl, revocationUrl, output);
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

  private async post(url: string, form: Record<string, string>, clientName: 'basic' | 'post'): Promise<TokenResponse> {
    const client = this.clients[clientName];
    const params = new URLSearchParams(form);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (clientName === 'basic') {
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
