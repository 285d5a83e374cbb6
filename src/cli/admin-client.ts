import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { resolve } from 'node:path';
import { z } from 'zod';
import { CliError, EXIT_FAILED, UsageError, type Io } from './io';

export const DEFAULT_URL = 'http://127.0.0.1:8080';
const TIMEOUT_MS = 30_000;

/** The options every admin command takes, and the help lines describing them. */
export const ADMIN_OPTIONS = {
  url: { type: 'string' },
  key: { type: 'string' },
} as const;

export const ADMIN_OPTIONS_HELP = `  --url URL    the vault (default: $TOKEN_VAULT_URL or ${DEFAULT_URL})
  --key KEY    an API key with the admin scope (default: $TOKEN_VAULT_ADMIN_KEY; prefer the
               variable: a --key argument shows in the process list)
  An https vault: TOKEN_VAULT_CA names the PEM file of the CA that signed its certificate
  (default: the system's CAs); under mTLS, TOKEN_VAULT_CLIENT_CERT and TOKEN_VAULT_CLIENT_KEY
  name a client certificate and its key. A certificate whose subject is the certSubject of a
  caller with the admin scope stands in for the API key.`;

/** TLS settings of an https vault: PEM text read from the TOKEN_VAULT_CA/CLIENT_CERT/CLIENT_KEY files. */
export interface ClientTls {
  ca?: string;
  cert?: string;
  key?: string;
}

/** What the CLI needs of an HTTP answer, whichever client made the request. */
interface Answer {
  status: number;
  statusText: string;
  text: string;
}

/** The vault answered with an error: `{ "error": { code, message, details? } }`, or something else. */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    details: string[],
  ) {
    super(`${code}: ${message}`, EXIT_FAILED, details);
  }
}

/** Nothing answered: connection refused, DNS failure, timeout. */
export class UnreachableError extends CliError {}

const errorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.array(z.object({ path: z.unknown(), message: z.unknown() }).loose()).optional(),
  }),
});

/**
 * The admin API over HTTP(S). The key is sent as a bearer token and never printed; error messages
 * name the URL and the API's error code and message.
 */
export class AdminClient {
  constructor(
    readonly baseUrl: string,
    /** Undefined when a client certificate identifies the caller instead. */
    private readonly key: string | undefined,
    private readonly io: Io,
    private readonly tls?: ClientTls,
  ) {}

  /** From --url/--key or TOKEN_VAULT_URL/TOKEN_VAULT_ADMIN_KEY, and TOKEN_VAULT_CA/CLIENT_CERT/CLIENT_KEY. */
  static fromOptions(values: { url?: string | undefined; key?: string | undefined }, io: Io, usage: string): AdminClient {
    const url = values.url ?? io.env.TOKEN_VAULT_URL ?? DEFAULT_URL;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url: not a URL: ${url}`, usage);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url: must be an http(s) URL: ${url}`, usage);
    const tls = readClientTls(io, parsed, usage);
    const key = values.key ?? io.env.TOKEN_VAULT_ADMIN_KEY;
    if (!key && tls?.cert === undefined) {
      throw new UsageError(
        'no admin API key: set TOKEN_VAULT_ADMIN_KEY (in dev mode: export TOKEN_VAULT_ADMIN_KEY=$(cat .data/dev-admin-key)) or pass --key, or under mTLS give a client certificate (TOKEN_VAULT_CLIENT_CERT and TOKEN_VAULT_CLIENT_KEY)',
        usage,
      );
    }
    return new AdminClient(url.replace(/\/+$/, ''), key || undefined, io, tls);
  }

  private async fetch(url: string, method: string, headers: Record<string, string>): Promise<Answer> {
    const response = await this.io.fetch(url, { method, headers, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) });
    return { status: response.status, statusText: response.statusText, text: await response.text().catch(() => '') };
  }

  async get<T>(path: string, schema: z.ZodType<T>): Promise<T> {
    return this.request('GET', path, schema);
  }

  async post<T>(path: string, schema: z.ZodType<T>): Promise<T> {
    return this.request('POST', path, schema);
  }

  private async request<T>(method: string, path: string, schema: z.ZodType<T>): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    const headers: Record<string, string> = { Accept: 'application/json', ...(this.key ? { Authorization: `Bearer ${this.key}` } : {}) };
    let response: Answer;
    try {
      response = this.tls ? await sendWithTls(url, method, headers, this.tls) : await this.fetch(url, method, headers);
    } catch (err) {
      const reason = reasonOf(err);
      throw new UnreachableError(`the vault at ${this.baseUrl} is unreachable (${reason}${tlsHint(reason, this.tls)})`);
    }
    const { text } = response;
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (response.status < 200 || response.status > 299) {
      const parsed = errorBody.safeParse(body);
      if (parsed.success) {
        const { code, message, details } = parsed.data.error;
        throw new ApiError(response.status, code, message, (details ?? []).map((d) => `  - ${String(d.path)}: ${String(d.message)}`));
      }
      throw new ApiError(response.status, `http_${response.status}`, `${method} ${url} answered ${response.status} ${response.statusText} (not a token-vault error body)`, []);
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) throw new CliError(`${method} ${url} answered ${response.status} with a body this CLI does not understand; is ${this.baseUrl} a token-vault?`);
    return parsed.data;
  }
}

function reasonOf(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${TIMEOUT_MS / 1000} s`;
  const cause = err instanceof Error ? (err.cause as NodeJS.ErrnoException | undefined) : undefined;
  if (cause?.code) return cause.code;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.message : String(err);
}

/** What to set when a TLS failure has an obvious remedy. */
function tlsHint(reason: string, tls: ClientTls | undefined): string {
  if (/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/.test(reason) && tls?.cert === undefined) {
    return '; the vault wants a client certificate: set TOKEN_VAULT_CLIENT_CERT and TOKEN_VAULT_CLIENT_KEY';
  }
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(reason) && tls?.ca === undefined) {
    return '; set TOKEN_VAULT_CA to the PEM file of the CA that signed its certificate';
  }
  return '';
}

const TLS_FILES = { ca: 'TOKEN_VAULT_CA', cert: 'TOKEN_VAULT_CLIENT_CERT', key: 'TOKEN_VAULT_CLIENT_KEY' } as const;

/** The PEM files the TLS variables name, read now so a wrong path fails before any request. */
function readClientTls(io: Io, url: URL, usage: string): ClientTls | undefined {
  const given = (Object.entries(TLS_FILES) as [keyof ClientTls, string][]).filter(([, name]) => io.env[name]);
  if (given.length === 0) return undefined;
  if (url.protocol !== 'https:') throw new UsageError(`${given.map(([, name]) => name).join(', ')} need an https:// vault URL, not ${url.origin}`, usage);
  if (Boolean(io.env.TOKEN_VAULT_CLIENT_CERT) !== Boolean(io.env.TOKEN_VAULT_CLIENT_KEY)) {
    throw new UsageError('TOKEN_VAULT_CLIENT_CERT and TOKEN_VAULT_CLIENT_KEY go together: the certificate and its key', usage);
  }
  const tls: ClientTls = {};
  for (const [field, name] of given) {
    const file = resolve(io.cwd, io.env[name]!);
    try {
      tls[field] = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return tls;
}

/**
 * The global fetch cannot take a CA or a client certificate (undici's dispatcher is not part of
 * Node's API), so with TLS settings the request goes through node:https on a connection of its own.
 */
function sendWithTls(url: string, method: string, headers: Record<string, string>, tls: ClientTls): Promise<Answer> {
  return new Promise((resolveAnswer, reject) => {
    const req = httpsRequest(url, { method, headers, agent: false, ...tls }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('error', reject);
      res.on('end', () => resolveAnswer({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', text }));
    });
    req.setTimeout(TIMEOUT_MS, () => req.destroy(Object.assign(new Error('timeout'), { name: 'TimeoutError' })));
    req.on('error', reject);
    req.end();
  });
}
