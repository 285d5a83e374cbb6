import type { OAuth2ProviderConfig } from '../config/schema';
import type { Secret } from '../secret';
import { standardHooks, type ProviderHooks } from './hooks';

/** What a token endpoint handed back, as the vault stores it. */
export interface TokenSet {
  accessToken: string;
  /** Absent: keep the refresh token we had (RFC 6749 §6). */
  refreshToken: string | null;
  /** Seconds; null when the provider sent none (or nothing usable). */
  expiresIn: number | null;
  /** Seconds the refresh token lives, when the answer says (`refresh_token_expires_in`, Intuit's `x_refresh_token_expires_in`). */
  refreshExpiresIn: number | null;
  scope: string | null;
  tokenType: string | null;
  idToken: string | null;
  /** The account id a provider hook found in the answer (Slack's team and user). */
  accountId: string | null;
}

/** RFC 8628 §3.2: what the device authorization endpoint answered. */
export interface DeviceAuthorization {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string | null;
  expiresIn: number;
  /** Seconds between polls; RFC 8628 says 5 when absent. */
  interval: number;
}

export type DeviceAuthorizationResult =
  | { outcome: 'ok'; authorization: DeviceAuthorization }
  | { outcome: 'transient'; reason: string; retryAfterSeconds: number | null }
  | { outcome: 'error'; reason: string };

/**
 * The outcome of one refresh, classified for what the vault must do next:
 *   ok             store the new tokens
 *   invalid_grant  the refresh token is dead: the user must connect again
 *   invalid_client every configured client secret was refused: a provider-level problem
 *   transient      5xx, 429, timeout, network: retry with backoff (honouring Retry-After)
 *   error          anything else the provider answered (other OAuth errors, malformed answers,
 *                  redirects): not retried quickly, logged
 * `reason` is a short, fixed description safe to log: never a token, never provider text.
 */
export type TokenResult =
  | { outcome: 'ok'; tokens: TokenSet; secretIndex: number }
  | { outcome: 'invalid_grant'; reason: string }
  | { outcome: 'invalid_client'; reason: string }
  | { outcome: 'transient'; reason: string; retryAfterSeconds: number | null }
  | { outcome: 'error'; reason: string };

/** A refresh is one kind of token request. */
export type RefreshResult = TokenResult;

/**
 * The outcome of one RFC 7009 revocation: revoked (or nothing to revoke), transient (5xx, 429,
 * timeout, network: try again later) or error (the provider refused the request: retrying the
 * same request will not help). `reason` is fixed text, safe to log.
 */
export type RevokeResult =
  | { outcome: 'revoked' }
  | { outcome: 'transient'; reason: string; retryAfterSeconds: number | null }
  | { outcome: 'error'; reason: string };

type PostAnswer = { kind: 'answered'; response: Response; text: string } | { kind: 'unreachable'; reason: string };

export interface OAuth2ClientOptions {
  /** Injected so tests can point it anywhere; default: the global fetch. */
  fetch?: typeof fetch;
  timeoutMs: number;
  now?: () => number;
}

const FORM = 'application/x-www-form-urlencoded';
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/**
 * Token requests (RFC 6749 §4.1.3 code exchange, §4.4 client credentials, §6 refresh, RFC 8628
 * device code), RFC 8628 device authorization, RFC 7009 revocation and the userinfo call. Never
 * follows redirects: that would re-send the secrets elsewhere.
 */
export class OAuth2Client {
  private readonly fetch: typeof fetch;
  private readonly now: () => number;

  constructor(private readonly options: OAuth2ClientOptions) {
    this.fetch = options.fetch ?? fetch;
    this.now = options.now ?? Date.now;
  }

  /**
   * Refreshes with the first client secret; on `invalid_client` tries the next one, so a client
   * secret can be rotated at the provider while the vault holds both.
   */
  refresh(provider: OAuth2ProviderConfig, refreshToken: Secret, hooks: ProviderHooks = standardHooks): Promise<TokenResult> {
    return this.tokenRequest(provider, { grant_type: 'refresh_token', refresh_token: refreshToken.reveal() }, hooks);
  }

  /** RFC 6749 §4.1.3 with the RFC 7636 code verifier. */
  exchangeCode(provider: OAuth2ProviderConfig, grant: { code: string; redirectUri: string; codeVerifier: Secret | null }, hooks: ProviderHooks = standardHooks): Promise<TokenResult> {
    const fields: Record<string, string> = { grant_type: 'authorization_code', code: grant.code, redirect_uri: grant.redirectUri };
    if (grant.codeVerifier !== null) fields.code_verifier = grant.codeVerifier.reveal();
    return this.tokenRequest(provider, fields, hooks);
  }

  /** RFC 6749 §4.4: an app token for the client itself. */
  clientCredentials(provider: OAuth2ProviderConfig, hooks: ProviderHooks = standardHooks): Promise<TokenResult> {
    return this.tokenRequest(provider, { grant_type: 'client_credentials', ...this.scopeField(provider) }, hooks);
  }

  /** RFC 8628 §3.4 poll; `authorization_pending`, `slow_down`, `access_denied` and `expired_token` come back as errors. */
  pollDevice(provider: OAuth2ProviderConfig, deviceCode: Secret, hooks: ProviderHooks = standardHooks): Promise<TokenResult> {
    return this.tokenRequest(provider, { grant_type: DEVICE_CODE_GRANT, device_code: deviceCode.reveal() }, hooks);
  }

  /** RFC 8628 §3.1. Google names the URI `verification_url`; both are read. */
  async deviceAuthorization(provider: OAuth2ProviderConfig & { deviceAuthorizationUrl: string }): Promise<DeviceAuthorizationResult> {
    const secret = provider.clientSecret[0]!;
    const answer = await this.post(provider, provider.deviceAuthorizationUrl, secret, { client_id: provider.clientId, ...this.scopeField(provider) });
    if (answer.kind === 'unreachable') return { outcome: 'transient', reason: answer.reason, retryAfterSeconds: null };
    const { response, text } = answer;
    const { status } = response;
    if (status >= 300 && status < 400) return { outcome: 'error', reason: `device authorization endpoint answered a redirect (HTTP ${status}); not followed` };
    if (status === 429 || status >= 500) return { outcome: 'transient', reason: `HTTP ${status}`, retryAfterSeconds: retryAfter(response.headers.get('retry-after'), this.now()) };
    const body = parseBody(response.headers.get('content-type'), text);
    if (typeof body?.error === 'string') return { outcome: 'error', reason: safeCode(body.error) };
    const deviceCode = stringField(body, 'device_code');
    const userCode = stringField(body, 'user_code');
    const verificationUri = stringField(body, 'verification_uri') ?? stringField(body, 'verification_url');
    const expiresIn = seconds(body?.expires_in);
    if (status !== 200 || !deviceCode || !userCode || !verificationUri || !expiresIn) return { outcome: 'error', reason: `unusable device authorization answer (HTTP ${status})` };
    return {
      outcome: 'ok',
      authorization: {
        deviceCode,
        userCode,
        verificationUri,
        verificationUriComplete: stringField(body, 'verification_uri_complete'),
        expiresIn,
        interval: seconds(body?.interval) || 5,
      },
    };
  }

  /** The userinfo answer (OpenID Connect Core §5.3, or a provider's "who am I" endpoint such as GitHub's /user); null when unusable. */
  async userinfo(url: string, accessToken: Secret): Promise<Record<string, unknown> | null> {
    try {
      const response = await this.fetch(url, {
        headers: { Authorization: `Bearer ${accessToken.reveal()}`, Accept: 'application/json', 'User-Agent': 'token-vault' },
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      const text = await response.text();
      return response.status === 200 ? parseBody(response.headers.get('content-type'), text) : null;
    } catch {
      return null;
    }
  }

  /**
   * RFC 7009 revocation of one token, with the `token_type_hint`. 200 means revoked, also for a
   * token the provider no longer knows; `unsupported_token_type` means the provider keeps no
   * such tokens to revoke, which is done too. Like refresh, tries the next client secret on
   * `invalid_client`.
   */
  async revoke(provider: OAuth2ProviderConfig & { revocationUrl: string }, token: Secret, hint: 'refresh_token' | 'access_token'): Promise<RevokeResult> {
    let result: RevokeResult = { outcome: 'error', reason: 'no client secret configured' };
    for (const secret of provider.clientSecret) {
      const answer = await this.post(provider, provider.revocationUrl, secret, { token: token.reveal(), token_type_hint: hint });
      if (answer.kind === 'unreachable') return { outcome: 'transient', reason: answer.reason, retryAfterSeconds: null };
      const { status } = answer.response;
      if (status === 200) return { outcome: 'revoked' };
      if (status >= 300 && status < 400) return { outcome: 'error', reason: `revocation endpoint answered a redirect (HTTP ${status}); not followed` };
      if (status === 429 || status >= 500) return { outcome: 'transient', reason: `HTTP ${status}`, retryAfterSeconds: retryAfter(answer.response.headers.get('retry-after'), this.now()) };
      const error = parseBody(answer.response.headers.get('content-type'), answer.text)?.error;
      if (error === 'unsupported_token_type') return { outcome: 'revoked' };
      if (error === 'invalid_client' || status === 401) {
        result = { outcome: 'error', reason: 'invalid_client' };
        continue;
      }
      return { outcome: 'error', reason: isOAuthErrorCode(error) ? error : `HTTP ${status}` };
    }
    return result;
  }

  /** One form POST with client authentication; never follows redirects, always times out. */
  private async post(provider: OAuth2ProviderConfig, url: string, secret: Secret, fields: Record<string, string>): Promise<PostAnswer> {
    const form = new URLSearchParams(fields);
    const headers: Record<string, string> = { 'Content-Type': FORM, Accept: 'application/json' };
    if (provider.clientAuth === 'client_secret_basic') {
      // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
      const pair = `${formEncode(provider.clientId)}:${formEncode(secret.reveal())}`;
      headers.Authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
    } else {
      form.set('client_id', provider.clientId);
      form.set('client_secret', secret.reveal());
    }
    try {
      const response = await this.fetch(url, {
        method: 'POST',
        headers,
        body: form.toString(),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      return { kind: 'answered', response, text: await response.text() };
    } catch (err) {
      // By name, not instanceof: the error may come from another realm (a test runner's vm).
      const name = (err as { name?: unknown } | null)?.name;
      return { kind: 'unreachable', reason: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network error' };
    }
  }

  private scopeField(provider: OAuth2ProviderConfig): { scope?: string } {
    return provider.scopes.length > 0 ? { scope: provider.scopes.join(provider.scopeSeparator) } : {};
  }

  /**
   * One token request with the first client secret; on `invalid_client` the next one, so a
   * client secret can be rotated at the provider while the vault holds both.
   */
  private async tokenRequest(provider: OAuth2ProviderConfig, fields: Record<string, string>, hooks: ProviderHooks): Promise<TokenResult> {
    let result: TokenResult = { outcome: 'invalid_client', reason: 'no client secret configured' };
    for (const [index, secret] of provider.clientSecret.entries()) {
      result = await this.attempt(provider, secret, fields, hooks, index);
      if (result.outcome !== 'invalid_client') return result;
    }
    return result;
  }

  private async attempt(provider: OAuth2ProviderConfig, secret: Secret, fields: Record<string, string>, hooks: ProviderHooks, index: number): Promise<TokenResult> {
    const answer = await this.post(provider, provider.tokenUrl, secret, fields);
    if (answer.kind === 'unreachable') return { outcome: 'transient', reason: answer.reason, retryAfterSeconds: null };
    const { response, text } = answer;
    const { status } = response;
    if (status >= 300 && status < 400) return { outcome: 'error', reason: `token endpoint answered a redirect (HTTP ${status}); not followed` };
    if (status === 429 || status >= 500) {
      return { outcome: 'transient', reason: `HTTP ${status}`, retryAfterSeconds: retryAfter(response.headers.get('retry-after'), this.now()) };
    }

    const parsed = parseBody(response.headers.get('content-type'), text);
    const body = parsed && hooks.tokenResponse ? hooks.tokenResponse(parsed) : parsed;
    const error = typeof body?.error === 'string' ? (hooks.errorCode?.(body.error) ?? body.error) : null;
    if (error !== null) {
      if (error === 'invalid_grant') return { outcome: 'invalid_grant', reason: 'invalid_grant' };
      if (error === 'invalid_client' || error === 'unauthorized_client') return { outcome: 'invalid_client', reason: error };
      if (error === 'temporarily_unavailable') return { outcome: 'transient', reason: error, retryAfterSeconds: retryAfter(response.headers.get('retry-after'), this.now()) };
      return { outcome: 'error', reason: safeCode(error) };
    }
    if (status === 401) return { outcome: 'invalid_client', reason: 'HTTP 401' };
    if (status < 200 || status >= 300) return { outcome: 'error', reason: `HTTP ${status}` };
    const accessToken = stringField(body, 'access_token');
    if (!accessToken) return { outcome: 'error', reason: 'answer without access_token' };
    return {
      outcome: 'ok',
      secretIndex: index,
      tokens: {
        accessToken,
        refreshToken: stringField(body, 'refresh_token'),
        expiresIn: seconds(body?.expires_in),
        refreshExpiresIn: seconds(body?.refresh_token_expires_in ?? body?.x_refresh_token_expires_in),
        scope: stringField(body, 'scope'),
        tokenType: stringField(body, 'token_type'),
        idToken: stringField(body, 'id_token'),
        accountId: body && hooks.accountId ? hooks.accountId(body) : null,
      },
    };
  }
}

/** Does a provider's `error` look like an OAuth error code (safe to log and to pass on), not free text? */
export function isOAuthErrorCode(value: unknown): value is string {
  return typeof value === 'string' && /^[a-z_]{1,64}$/.test(value);
}

/** A provider's error code, when it looks like one; never free provider text in logs. */
function safeCode(error: string): string {
  return isOAuthErrorCode(error) ? error : 'provider error';
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

/** JSON (the standard) or form-encoded (GitHub without an Accept header, some older providers). */
function parseBody(contentType: string | null, text: string): Record<string, unknown> | null {
  const type = (contentType ?? '').toLowerCase();
  if (type.includes(FORM)) return Object.fromEntries(new URLSearchParams(text));
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return type.includes('json') || !text.includes('=') ? null : Object.fromEntries(new URLSearchParams(text));
  }
}

function stringField(body: Record<string, unknown> | null, name: string): string | null {
  const value = body?.[name];
  return typeof value === 'string' && value.length > 0 ? value : null;
}

/** `expires_in` as a number or a numeric string; anything else is "unknown". */
function seconds(value: unknown): number | null {
  const number = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  return typeof number === 'number' && Number.isFinite(number) && number >= 0 ? Math.floor(number) : null;
}

/** Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function retryAfter(header: string | null, now: number): number | null {
  if (!header) return null;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}
