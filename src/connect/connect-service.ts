import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../clock';
import type { OAuth1ProviderConfig, OAuth2ProviderConfig, ProviderConfig } from '../config/schema';
import type { Actor, CredentialService } from '../credentials/credential-service';
import type { OAuth1Credential, OAuth2Credential } from '../credentials/credential';
import { InvalidRequestError, NotFoundError, ProviderError, ProviderUnavailableError } from '../errors';
import type { Metrics } from '../observability/metrics';
import { hooksOf } from '../providers/catalog';
import type { OAuth1HttpClient, OAuth1Result } from '../providers/oauth1/oauth1-client';
import { isOAuthErrorCode, type OAuth2Client, type TokenSet } from '../providers/oauth2-client';
import { tokenFields } from '../refresh/refresher';
import { Secret } from '../secret';
import { idTokenSubject } from './id-token';
import { isAllowedReturnTo, withOutcome } from './return-to';
import type { ConnectSession, ConnectSessions } from './sessions';

/** DESIGN §4: a browser flow's state lives 10 minutes. */
export const BROWSER_FLOW_TTL_MS = 10 * 60_000;
/** The cookie that binds a flow to the browser that opened its start URL. */
export const BINDING_COOKIE_PREFIX = 'tv_connect_';

export interface ConnectServiceDeps {
  sessions: ConnectSessions;
  credentials: CredentialService;
  client: OAuth2Client;
  oauth1: OAuth1HttpClient;
  /** Base of redirect_uri and oauth_callback (`server.publicUrl`); never the Host header. */
  publicUrl: string | null;
  /** Allowed return_to origins and path prefixes (`connect.returnTo`). */
  returnTo: readonly string[];
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
}

export interface StartRequest {
  user: string;
  returnTo: string | null;
  flow: 'browser' | 'device';
  scopes: string[] | null;
}

export type StartAnswer =
  | { flow: 'authorization_code' | 'oauth1'; id: string; url: string; expiresAt: number }
  | { flow: 'device'; id: string; userCode: string; verificationUri: string; verificationUriComplete: string | null; expiresAt: number; interval: number };

/** What the browser gets: a redirect, and the binding cookie to set or clear. */
export interface BrowserAnswer {
  redirect: string;
  cookie: { name: string; value: string | null; maxAgeSeconds: number; path: string; secure: boolean };
}

/** A query or form value as express hands it over. */
type Query = Record<string, unknown>;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');
const token = (bytes: number) => randomBytes(bytes).toString('base64url');

/**
 * The connect flows of DESIGN §4: authorization code with PKCE, OAuth 1.0a three-legged, and
 * the device authorization grant (whose polling is the DevicePoller's). A flow is a session in
 * Redis: its start URL on the vault binds the browser with a cookie, its state is single use,
 * and its callback must come back to the same browser, so a victim cannot be made to finish
 * someone else's flow (login CSRF) and a callback cannot be replayed.
 */
export class ConnectService {
  constructor(private readonly deps: ConnectServiceDeps) {}

  /** POST /connect/:provider. */
  async start(caller: string, providerId: string, provider: ProviderConfig, request: StartRequest): Promise<StartAnswer> {
    if (request.flow === 'device') return this.startDevice(caller, providerId, provider, request);
    if (provider.type === 'oauth1' && request.scopes !== null) {
      throw new InvalidRequestError('OAuth 1.0a has no scopes: give the provider its authorizeParams instead', [{ path: 'body.scopes', message: 'not for an OAuth 1.0a provider' }]);
    }
    const returnTo = this.checkReturnTo(request.returnTo);
    const publicUrl = this.requirePublicUrl();
    const id = `cs_${token(16)}`;
    const secret = token(32);
    const state = `${id}.${secret}`;
    const now = this.deps.clock.now();
    const base = { id, provider: providerId, user: request.user, caller, returnTo, createdAt: now, expiresAt: now + BROWSER_FLOW_TTL_MS, stateHash: sha256(secret) };
    const none = { userCode: null, verificationUri: null, verificationUriComplete: null, interval: null };
    const redirectUri = callbackUrl(publicUrl, providerId);

    if (provider.type === 'oauth1') {
      if (!provider.requestTokenUrl || !provider.authorizeUrl || !provider.accessTokenUrl) {
        throw new InvalidRequestError(`provider "${providerId}" has no connect flow: it needs requestTokenUrl, authorizeUrl and accessTokenUrl`);
      }
      const callback = new URL(redirectUri);
      callback.searchParams.set('state', state);
      const temporary = await this.deps.oauth1.requestToken({ ...provider, requestTokenUrl: provider.requestTokenUrl }, callback.toString());
      const tokens = this.providerAnswer(temporary, providerId);
      const authorize = new URL(provider.authorizeUrl);
      for (const [name, value] of Object.entries(provider.authorizeParams)) authorize.searchParams.set(name, value);
      authorize.searchParams.set('oauth_token', tokens.token.reveal());
      await this.deps.sessions.create({ ...base, ...none, flow: 'oauth1' }, {
        authorizeUrl: authorize.toString(),
        requestToken: tokens.token.reveal(),
        requestTokenSecret: tokens.tokenSecret.reveal(),
      });
      return this.started(providerId, 'oauth1', id, publicUrl, base.expiresAt);
    }

    if (!provider.authorizationUrl) throw new InvalidRequestError(`provider "${providerId}" has no connect flow: it needs authorizationUrl`);
    const scopes = request.scopes ?? provider.scopes;
    const codeVerifier = provider.pkce ? token(32) : undefined;
    const nonce = scopes.includes('openid') ? token(16) : undefined;
    const authorize = new URL(provider.authorizationUrl);
    const params: Record<string, string> = {
      ...provider.authorizationParams,
      response_type: 'code',
      client_id: provider.clientId,
      redirect_uri: redirectUri,
      state,
    };
    if (scopes.length > 0) params.scope = scopes.join(provider.scopeSeparator);
    if (codeVerifier) Object.assign(params, { code_challenge: createHash('sha256').update(codeVerifier).digest('base64url'), code_challenge_method: 'S256' });
    if (nonce) params.nonce = nonce;
    for (const [name, value] of Object.entries(params)) authorize.searchParams.set(name, value);
    await this.deps.sessions.create({ ...base, ...none, flow: 'authorization_code' }, {
      authorizeUrl: authorize.toString(),
      ...(codeVerifier ? { codeVerifier } : {}),
      ...(nonce ? { nonce } : {}),
    });
    return this.started(providerId, 'authorization_code', id, publicUrl, base.expiresAt);
  }

  /**
   * GET /connect/start/:id: binds the flow to this browser with a cookie, then sends it to the
   * provider. Opening it again from the same browser works (a reload); from another, it does not.
   */
  async open(id: string, cookies: Record<string, string>): Promise<BrowserAnswer> {
    const session = await this.deps.sessions.get(id);
    const now = this.deps.clock.now();
    if (!session || session.flow === 'device' || session.status !== 'pending' && session.status !== 'started' || now >= session.expiresAt) {
      throw new InvalidRequestError('this connect link is unknown, finished or expired; start again from the application');
    }
    const name = `${BINDING_COOKIE_PREFIX}${id}`;
    const presented = cookies[name];
    const binding = presented ?? token(32);
    const existing = await this.deps.sessions.bind(id, sha256(binding));
    if (existing === 'gone') throw new InvalidRequestError('this connect link is unknown, finished or expired; start again from the application');
    if (existing !== null && !sameHash(existing, sha256(binding))) {
      throw new InvalidRequestError('this connect link was already opened in another browser; start again from the application');
    }
    const { authorizeUrl } = await this.deps.sessions.secrets(id);
    if (!authorizeUrl) throw new InvalidRequestError('this connect link is unknown, finished or expired; start again from the application');
    return { redirect: authorizeUrl, cookie: this.bindingCookie(name, binding, Math.ceil((session.expiresAt - now) / 1000)) };
  }

  /**
   * GET /callback/:provider: checks state, browser and single use, then finishes the flow and
   * sends the browser to return_to with the outcome. Only a request that cannot be tied to a
   * flow is answered with an error page (there is no return_to to trust then).
   */
  async callback(providerId: string, provider: ProviderConfig | undefined, query: Query, cookies: Record<string, string>): Promise<BrowserAnswer> {
    const state = typeof query.state === 'string' ? query.state : '';
    const parts = state.split('.');
    const [id = '', secret = ''] = parts.length === 2 ? parts : [];
    const session = id && secret ? await this.deps.sessions.get(id) : null;
    if (!session || !provider || session.provider !== providerId || session.flow === 'device' || !session.stateHash || !sameHash(session.stateHash, sha256(secret))) {
      throw new InvalidRequestError('unknown or expired state: start again from the application');
    }
    const name = `${BINDING_COOKIE_PREFIX}${id}`;
    const binding = cookies[name];
    if (!binding || !session.bindingHash || !sameHash(session.bindingHash, sha256(binding))) {
      throw new InvalidRequestError('this browser did not start the connect flow (its cookie is missing); start again from the application');
    }
    if (!(await this.deps.sessions.claim(id))) throw new InvalidRequestError('this connect flow was already finished; start again from the application');
    const clear = this.bindingCookie(name, null, 0);
    const returnTo = session.returnTo!;
    if (this.deps.clock.now() >= session.expiresAt) return this.fail(session, 'expired', clear);

    try {
      const version = provider.type === 'oauth1' ? await this.finishOAuth1(session, provider, query) : await this.finishOAuth2(session, provider, query);
      if ('error' in version) return this.fail(session, version.error, clear);
      await this.deps.sessions.finish(id, { status: 'connected', accountId: version.accountId, version: version.version });
      this.count(session, 'connected');
      return { redirect: withOutcome(returnTo, { status: 'connected', provider: providerId, session: id }), cookie: clear };
    } catch (err) {
      const code = err instanceof ProviderUnavailableError ? 'provider_unavailable' : err instanceof ProviderError ? 'provider_error' : 'internal';
      if (code === 'internal') this.deps.logger.error({ err, provider: providerId, session: id }, 'a connect flow failed');
      return this.fail(session, code, clear);
    }
  }

  /** GET /connect/sessions/:id, for the caller that started it. */
  async session(caller: string, id: string): Promise<ConnectSession> {
    const session = await this.deps.sessions.get(id);
    if (!session || session.caller !== caller) throw new NotFoundError('no such connect session');
    const expired = (session.status === 'pending' || session.status === 'started') && this.deps.clock.now() >= session.expiresAt;
    return expired ? { ...session, status: 'expired' } : session;
  }

  /**
   * The account id of a new OAuth 2.0 credential: from the provider's hook, else the ID token
   * (when the flow sent a nonce, it must match), else the userinfo endpoint.
   */
  async accountId(provider: OAuth2ProviderConfig, tokens: TokenSet, nonce: string | null): Promise<string | null | { error: string }> {
    if (tokens.accountId !== null) return tokens.accountId;
    if (tokens.idToken !== null) {
      const subject = idTokenSubject(tokens.idToken, provider.clientId, nonce);
      if ('error' in subject) return subject;
      return subject.sub;
    }
    if (!provider.userinfoUrl) return null;
    const info = await this.deps.client.userinfo(provider.userinfoUrl, new Secret(tokens.accessToken));
    const value = info?.[provider.accountIdField];
    if (typeof value === 'string' || typeof value === 'number') return String(value).slice(0, 256);
    // Connected all the same, but inbound revocation webhooks will not find this credential.
    this.deps.logger.warn({ field: provider.accountIdField, answered: info !== null }, 'the userinfo call gave no account id; the credential is stored without one');
    return null;
  }

  /** An OAuth 2.0 credential from a token answer at `now`. */
  credentialFrom(provider: OAuth2ProviderConfig, tokens: TokenSet, accountId: string | null): OAuth2Credential {
    return { type: 'oauth2', ...tokenFields(tokens, provider, this.deps.clock.now(), null), accountId, metadata: null };
  }

  /** The actor of a flow's write, for the audit trail: the caller that started it. */
  actor(session: ConnectSession): Actor {
    return { caller: session.caller, requestId: `connect:${session.id}` };
  }

  count(session: Pick<ConnectSession, 'provider' | 'flow'>, outcome: 'started' | 'connected' | 'denied' | 'failed' | 'expired'): void {
    this.deps.metrics.connects.inc({ provider: session.provider, flow: session.flow, outcome });
  }

  private async startDevice(caller: string, providerId: string, provider: ProviderConfig, request: StartRequest): Promise<StartAnswer> {
    if (provider.type !== 'oauth2' || !provider.deviceAuthorizationUrl) {
      throw new InvalidRequestError(`provider "${providerId}" has no device flow: it needs deviceAuthorizationUrl`);
    }
    const scopes = request.scopes ?? provider.scopes;
    const answer = await this.deps.client.deviceAuthorization({ ...provider, scopes, deviceAuthorizationUrl: provider.deviceAuthorizationUrl });
    if (answer.outcome === 'transient') throw new ProviderUnavailableError(`${providerId} is unavailable; the device flow could not start`, answer.retryAfterSeconds ?? 5);
    if (answer.outcome === 'error') {
      this.deps.logger.warn({ provider: providerId, reason: answer.reason }, 'device authorization refused');
      throw new ProviderError(`${providerId} refused the device authorization request`);
    }
    const { authorization } = answer;
    const id = `cs_${token(16)}`;
    const now = this.deps.clock.now();
    const session = {
      id,
      provider: providerId,
      user: request.user,
      caller,
      flow: 'device' as const,
      returnTo: null,
      createdAt: now,
      expiresAt: now + authorization.expiresIn * 1000,
      stateHash: null,
      userCode: authorization.userCode,
      verificationUri: authorization.verificationUri,
      verificationUriComplete: authorization.verificationUriComplete,
      interval: authorization.interval,
    };
    await this.deps.sessions.create(session, { deviceCode: authorization.deviceCode }, authorization.interval * 1000);
    this.count(session, 'started');
    return {
      flow: 'device',
      id,
      userCode: authorization.userCode,
      verificationUri: authorization.verificationUri,
      verificationUriComplete: authorization.verificationUriComplete,
      expiresAt: session.expiresAt,
      interval: authorization.interval,
    };
  }

  private async finishOAuth2(session: ConnectSession, provider: OAuth2ProviderConfig, query: Query): Promise<{ version: number; accountId: string | null } | { error: string }> {
    if (query.error !== undefined) return { error: oauthError(query.error) };
    if (typeof query.code !== 'string' || query.code === '') return { error: 'invalid_request' };
    const secrets = await this.deps.sessions.secrets(session.id);
    const result = await this.deps.client.exchangeCode(
      provider,
      { code: query.code, redirectUri: callbackUrl(this.requirePublicUrl(), session.provider), codeVerifier: secrets.codeVerifier ? new Secret(secrets.codeVerifier) : null },
      hooksOf(provider),
    );
    if (result.outcome === 'transient') throw new ProviderUnavailableError('provider unavailable', result.retryAfterSeconds ?? 1);
    if (result.outcome !== 'ok') {
      this.deps.logger.warn({ provider: session.provider, session: session.id, outcome: result.outcome, reason: result.reason }, 'the code exchange failed');
      return { error: result.outcome === 'invalid_grant' ? 'invalid_grant' : 'provider_error' };
    }
    const accountId = await this.accountId(provider, result.tokens, secrets.nonce ?? null);
    if (accountId !== null && typeof accountId === 'object') {
      this.deps.logger.warn({ provider: session.provider, session: session.id, reason: accountId.error }, 'the ID token was refused');
      return { error: 'invalid_id_token' };
    }
    const { meta } = await this.deps.credentials.put(this.actor(session), session.user, session.provider, provider, this.credentialFrom(provider, result.tokens, accountId));
    return { version: meta.version, accountId };
  }

  private async finishOAuth1(session: ConnectSession, provider: OAuth1ProviderConfig, query: Query): Promise<{ version: number; accountId: string | null } | { error: string }> {
    if (query.denied !== undefined) return { error: 'access_denied' };
    if (query.error !== undefined) return { error: oauthError(query.error) };
    const secrets = await this.deps.sessions.secrets(session.id);
    if (typeof query.oauth_token !== 'string' || typeof query.oauth_verifier !== 'string' || !secrets.requestToken || secrets.requestTokenSecret === undefined) {
      return { error: 'invalid_request' };
    }
    if (!sameText(query.oauth_token, secrets.requestToken)) return { error: 'invalid_request' };
    const temporary = { token: new Secret(secrets.requestToken), tokenSecret: new Secret(secrets.requestTokenSecret) };
    const answer = await this.deps.oauth1.accessToken({ ...provider, accessTokenUrl: provider.accessTokenUrl! }, temporary, query.oauth_verifier);
    const tokens = this.providerAnswer(answer, session.provider);
    const field = provider.accountIdField ? tokens.fields[provider.accountIdField] : undefined;
    const accountId = field ? field.slice(0, 256) : null;
    const credential: OAuth1Credential = { type: 'oauth1', oauthToken: tokens.token, oauthTokenSecret: tokens.tokenSecret, issuedAt: this.deps.clock.now(), accountId, metadata: null };
    const { meta } = await this.deps.credentials.put(this.actor(session), session.user, session.provider, provider, credential);
    return { version: meta.version, accountId };
  }

  /** The tokens of an OAuth 1.0a connect step, or the error its failure is for the caller. */
  private providerAnswer(result: OAuth1Result, providerId: string): Extract<OAuth1Result, { outcome: 'ok' }>['tokens'] {
    if (result.outcome === 'ok') return result.tokens;
    this.deps.logger.warn({ provider: providerId, flow: 'oauth1', outcome: result.outcome, reason: result.reason }, 'the OAuth 1.0a provider refused a connect step');
    if (result.outcome === 'transient') throw new ProviderUnavailableError(`${providerId} is unavailable; the connect flow could not continue`, result.retryAfterSeconds ?? 5);
    throw new ProviderError(`${providerId} refused a step of the OAuth 1.0a connect flow`);
  }

  private async fail(session: ConnectSession, error: string, cookie: BrowserAnswer['cookie']): Promise<BrowserAnswer> {
    const status = error === 'expired' ? 'expired' : 'error';
    await this.deps.sessions.finish(session.id, { status, ...(status === 'error' ? { error } : {}) });
    this.count(session, status === 'expired' ? 'expired' : error === 'access_denied' ? 'denied' : 'failed');
    return { redirect: withOutcome(session.returnTo!, { status: 'error', error, provider: session.provider, session: session.id }), cookie };
  }

  private started(providerId: string, flow: 'authorization_code' | 'oauth1', id: string, publicUrl: string, expiresAt: number): StartAnswer {
    this.count({ provider: providerId, flow }, 'started');
    return { flow, id, url: new URL(`connect/start/${id}`, withSlash(publicUrl)).toString(), expiresAt };
  }

  /** Scoped to the vault's base path: the start URL reads it back (a reload) and the callback checks it. */
  private bindingCookie(name: string, value: string | null, maxAgeSeconds: number): BrowserAnswer['cookie'] {
    const publicUrl = this.requirePublicUrl();
    return { name, value, maxAgeSeconds, path: new URL(withSlash(publicUrl)).pathname, secure: publicUrl.startsWith('https:') };
  }

  private checkReturnTo(returnTo: string | null): string {
    if (this.deps.returnTo.length === 0) throw new InvalidRequestError('connect.returnTo is not configured: the vault has nowhere it may send users back to');
    if (returnTo === null) throw new InvalidRequestError('return_to is required', [{ path: 'body.return_to', message: 'required' }]);
    if (!isAllowedReturnTo(returnTo, this.deps.returnTo)) {
      throw new InvalidRequestError('return_to is not under any of connect.returnTo', [{ path: 'body.return_to', message: 'must match connect.returnTo by origin and path prefix' }]);
    }
    return returnTo;
  }

  private requirePublicUrl(): string {
    if (!this.deps.publicUrl) throw new InvalidRequestError('server.publicUrl is not configured: the vault cannot build its callback URL');
    return this.deps.publicUrl;
  }
}

/** The callback URL a provider sends the browser back to: under publicUrl, never from the Host header. */
export function callbackUrl(publicUrl: string, providerId: string): string {
  return new URL(`callback/${providerId}`, withSlash(publicUrl)).toString();
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

function oauthError(value: unknown): string {
  return isOAuthErrorCode(value) ? value : 'provider_error';
}

function sameHash(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

function sameText(a: string, b: string): boolean {
  return sameHash(sha256(a), sha256(b));
}
