import type { OAuth1ProviderConfig } from '../../config/schema';
import { Secret } from '../../secret';
import { retryAfter } from '../oauth2-client';
import { newNonce, signRequest, type OAuth1Client } from './signature';

/** Temporary or token credentials (RFC 5849 §2.1, §2.3), with the rest of the answer's fields. */
export interface OAuth1Tokens {
  token: Secret;
  tokenSecret: Secret;
  /** Other fields of the answer (Twitter's user_id and screen_name); never the token or secret. */
  fields: Record<string, string>;
}

export type OAuth1Result =
  | { outcome: 'ok'; tokens: OAuth1Tokens }
  | { outcome: 'transient'; reason: string; retryAfterSeconds: number | null }
  | { outcome: 'error'; reason: string };

export interface OAuth1HttpOptions {
  fetch?: typeof fetch;
  timeoutMs: number;
  now?: () => number;
}

/** The consumer as the signer sees it. */
export function oauth1Client(provider: OAuth1ProviderConfig): OAuth1Client {
  return {
    consumerKey: provider.consumerKey,
    consumerSecret: provider.consumerSecret,
    signatureMethod: provider.signatureMethod,
    includeVersion: provider.includeVersion,
    ...(provider.privateKey ? { privateKey: provider.privateKey } : {}),
  };
}

/**
 * The two server calls of the three-legged flow: temporary credentials with a callback (§2.1)
 * and token credentials with the verifier (§2.3). Signed POSTs, answers form-encoded; like the
 * OAuth 2.0 client, never follows redirects and always times out.
 */
export class OAuth1HttpClient {
  private readonly fetch: typeof fetch;
  private readonly now: () => number;

  constructor(private readonly options: OAuth1HttpOptions) {
    this.fetch = options.fetch ?? fetch;
    this.now = options.now ?? Date.now;
  }

  async requestToken(provider: OAuth1ProviderConfig & { requestTokenUrl: string }, callbackUrl: string): Promise<OAuth1Result> {
    const result = await this.post(provider, provider.requestTokenUrl, null, { oauth_callback: callbackUrl });
    // §2.1: without the confirmation the server did not take the callback (an OAuth 1.0 server).
    if (result.outcome === 'ok' && result.tokens.fields.oauth_callback_confirmed !== 'true') {
      return { outcome: 'error', reason: 'request token answer without oauth_callback_confirmed=true' };
    }
    return result;
  }

  accessToken(provider: OAuth1ProviderConfig & { accessTokenUrl: string }, temporary: { token: Secret; tokenSecret: Secret }, verifier: string): Promise<OAuth1Result> {
    return this.post(provider, provider.accessTokenUrl, temporary, { oauth_verifier: verifier });
  }

  private async post(provider: OAuth1ProviderConfig, url: string, token: { token: Secret; tokenSecret: Secret } | null, extra: Record<string, string>): Promise<OAuth1Result> {
    const { authorization } = signRequest(oauth1Client(provider), { method: 'POST', url }, {
      token: token?.token ?? null,
      tokenSecret: token?.tokenSecret ?? null,
      nonce: newNonce(),
      timestamp: String(Math.floor(this.now() / 1000)),
      extra,
    });
    let response: Response;
    let text: string;
    try {
      response = await this.fetch(url, {
        method: 'POST',
        headers: { Authorization: authorization, Accept: 'application/x-www-form-urlencoded, */*', 'User-Agent': 'token-vault' },
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      text = await response.text();
    } catch (err) {
      const name = (err as { name?: unknown } | null)?.name;
      return { outcome: 'transient', reason: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network error', retryAfterSeconds: null };
    }
    const { status } = response;
    if (status === 429 || status >= 500) return { outcome: 'transient', reason: `HTTP ${status}`, retryAfterSeconds: retryAfter(response.headers.get('retry-after'), this.now()) };
    if (status !== 200) return { outcome: 'error', reason: `HTTP ${status}` };
    const answer = Object.fromEntries(new URLSearchParams(text));
    const { oauth_token: tokenValue, oauth_token_secret: secretValue, ...fields } = answer;
    if (!tokenValue || secretValue === undefined) return { outcome: 'error', reason: 'answer without oauth_token and oauth_token_secret' };
    return { outcome: 'ok', tokens: { token: new Secret(tokenValue), tokenSecret: new Secret(secretValue), fields } };
  }
}
