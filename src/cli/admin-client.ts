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
               variable: a --key argument shows in the process list)`;

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
 * The admin API over HTTP. The key is sent as a bearer token and never printed; error messages
 * name the URL and the API's error code and message.
 */
export class AdminClient {
  constructor(
    readonly baseUrl: string,
    private readonly key: string,
    private readonly io: Io,
  ) {}

  /** From --url/--key or TOKEN_VAULT_URL/TOKEN_VAULT_ADMIN_KEY. */
  static fromOptions(values: { url?: string | undefined; key?: string | undefined }, io: Io, usage: string): AdminClient {
    const url = values.url ?? io.env.TOKEN_VAULT_URL ?? DEFAULT_URL;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url: not a URL: ${url}`, usage);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url: must be an http(s) URL: ${url}`, usage);
    const key = values.key ?? io.env.TOKEN_VAULT_ADMIN_KEY;
    if (!key) {
      throw new UsageError('no admin API key: set TOKEN_VAULT_ADMIN_KEY (in dev mode: export TOKEN_VAULT_ADMIN_KEY=$(cat .data/dev-admin-key)) or pass --key', usage);
    }
    return new AdminClient(url.replace(/\/+$/, ''), key, io);
  }

  async get<T>(path: string, schema: z.ZodType<T>): Promise<T> {
    return this.request('GET', path, schema);
  }

  async post<T>(path: string, schema: z.ZodType<T>): Promise<T> {
    return this.request('POST', path, schema);
  }

  private async request<T>(method: string, path: string, schema: z.ZodType<T>): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    let response: Response;
    try {
      response = await this.io.fetch(url, {
        method,
        headers: { Authorization: `Bearer ${this.key}`, Accept: 'application/json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      throw new UnreachableError(`the vault at ${this.baseUrl} is unreachable (${reasonOf(err)})`);
    }
    const text = await response.text().catch(() => '');
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (!response.ok) {
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
  return err instanceof Error ? err.message : String(err);
}
