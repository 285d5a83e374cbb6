import type { Logger } from 'pino';
import type { Clock } from '../clock';
import { isAppProvider, type OAuth1ProviderConfig, type ProviderConfig } from '../config/schema';
import { InvalidRequestError, NotFoundError, PreconditionFailedError, ProviderError, ProviderUnavailableError, ReauthRequiredError, UnavailableError } from '../errors';
import { newEventId, type EventBus } from '../events/event-bus';
import type { AuditEntry, AuditLog } from '../observability/logger';
import { oauth1Client } from '../providers/oauth1/oauth1-client';
import { signRequest, type OAuth1Request, type OAuth1Signature } from '../providers/oauth1/signature';
import type { Metrics } from '../observability/metrics';
import type { RefreshOutcome, Refresher } from '../refresh/refresher';
import { ANY_VERSION, type CredentialMeta, type CredentialStore, type ExpectedVersion } from '../store/credential-store';
import { APP_USER, type Credential, type OAuth2Credential } from './credential';
import type { Revoker } from './revoker';
import type { SealedCredentials } from './sealed-credentials';

/** Who asks: recorded in audit entries. */
export interface Actor {
  caller: string;
  requestId: string;
}

export interface CredentialServiceDeps {
  store: CredentialStore;
  sealed: SealedCredentials;
  refresher: Refresher;
  revoker: Revoker;
  events: EventBus;
  clock: Clock;
  audit: AuditLog;
  metrics: Metrics;
  logger: Logger;
}

/** What a reveal hands out; `stale`: a refresh failed for a transient reason and the old, still valid token is served. */
export interface Revealed {
  meta: CredentialMeta;
  credential: Credential;
  stale: boolean;
}

/** Why a credential is being deleted, and who asked (the token.revoked event says both). */
type Removal = { reason: 'deleted' | 'provider_webhook'; actor: Actor };

/** A version-less delete raced a write this many times in a row: give up with 503 rather than loop. */
const DELETE_ATTEMPTS = 5;

export const DEFAULT_MIN_TTL_SECONDS = 30;

/**
 * Does an access token need refreshing before it is handed out? When it expires within
 * min(min_ttl, half its lifetime): the cap at half the lifetime means a just-refreshed
 * short-lived token is served, never refreshed again in a loop. A token without a known expiry
 * is left to the scheduler.
 */
export function needsRefresh(credential: OAuth2Credential, minTtlSeconds: number, now: number): boolean {
  if (credential.expiresAt === null) return false;
  const lifetime = credential.expiresAt - credential.issuedAt;
  return credential.expiresAt - now <= Math.min(minTtlSeconds * 1000, lifetime / 2);
}

/**
 * Stores, reveals, lists, refreshes and deletes credentials, with an audit entry for every
 * write, delete and reveal. Endpoints validate input and check the caller's rights first.
 */
export class CredentialService {
  constructor(private readonly deps: CredentialServiceDeps) {}

  async put(
    actor: Actor,
    user: string,
    providerId: string,
    provider: ProviderConfig,
    credential: Credential,
    expected: ExpectedVersion = ANY_VERSION,
  ): Promise<{ meta: CredentialMeta; created: boolean }> {
    try {
      // Indexed before the write (an entry may outlive its credential, never the other way round)
      // and again after it: a removal of this user's entry that ran meanwhile (a delete of the
      // previous credential) must not leave the new one unfindable.
      const { accountId } = credential;
      if (accountId !== null) await this.deps.store.indexAccount(providerId, accountId, user);
      const written = await this.deps.sealed.write(user, providerId, provider, credential, expected);
      if (accountId !== null) await this.deps.store.indexAccount(providerId, accountId, user);
      this.done('put', actor, user, providerId, 'ok', written.meta.version);
      return written;
    } catch (err) {
      this.done('put', actor, user, providerId, 'failed');
      throw err;
    }
  }

  /**
   * The credential to hand out, refreshed first when its access token expires within
   * min(min_ttl, lifetime / 2). When a refresh fails for a transient reason and the old token
   * is still valid, the old one is returned with `stale: true`. The app token of a
   * client-credentials provider is minted on first use.
   */
  async reveal(
    actor: Actor,
    user: string,
    providerId: string,
    minTtlSeconds = DEFAULT_MIN_TTL_SECONDS,
    provider?: ProviderConfig,
  ): Promise<Revealed> {
    const { store, sealed, clock, refresher } = this.deps;
    const appToken = isAppProvider(provider);
    const isFresh = (_: unknown, current: OAuth2Credential) => !needsRefresh(current, minTtlSeconds, clock.now());
    const stored = await store.get(user, providerId);
    if (!stored) {
      if (appToken && user === APP_USER) return this.served(actor, user, providerId, await refresher.appToken(providerId, isFresh));
      this.done('reveal', actor, user, providerId, 'not_found');
      throw notFound(providerId);
    }
    if (stored.state === 'reauth_required') {
      this.done('reveal', actor, user, providerId, 'refused', stored.version);
      throw reauthRequired(providerId);
    }
    const credential = await sealed.open(stored);
    // The record is its metadata plus the sealed blob, handed on typed as metadata only (a copy
    // without the blob would cost every GET an object rest copy).
    const meta: CredentialMeta = stored;
    if (credential.type === 'oauth1' || !needsRefresh(credential, minTtlSeconds, clock.now())) {
      this.done('reveal', actor, user, providerId, 'ok', stored.version);
      return { meta, credential, stale: false };
    }
    const outcome =
      credential.refreshToken === null && !appToken
        ? ({ kind: 'no_refresh_token' } as const)
        : await refresher.refresh(user, providerId, 'on_demand', isFresh);
    const stillValid = credential.expiresAt !== null && credential.expiresAt > clock.now();
    if (stillValid && (outcome.kind === 'failed' || outcome.kind === 'no_refresh_token')) {
      this.done('reveal', actor, user, providerId, 'ok', stored.version);
      return { meta, credential, stale: outcome.kind === 'failed' };
    }
    return this.served(actor, user, providerId, outcome, stored.version);
  }

  /** The answer to a reveal that needed the refresher: the credential it left, or the error it ended with. */
  private served(actor: Actor, user: string, providerId: string, outcome: RefreshOutcome, version?: number): Revealed {
    if (outcome.kind === 'refreshed' || outcome.kind === 'fresh') {
      this.done('reveal', actor, user, providerId, 'ok', outcome.meta.version);
      return { meta: outcome.meta, credential: outcome.credential, stale: false };
    }
    this.done('reveal', actor, user, providerId, outcome.kind === 'gone' ? 'not_found' : 'refused', version);
    throw outcomeError(outcome, providerId);
  }

  /**
   * Signs a request with an OAuth 1.0a credential, so the token secret never leaves the vault
   * (the only way to use a `signOnly` provider's credentials). Audited like a reveal.
   */
  async sign(actor: Actor, user: string, providerId: string, provider: OAuth1ProviderConfig, request: OAuth1Request, options: { nonce: string; timestamp: string }): Promise<OAuth1Signature> {
    const stored = await this.deps.store.get(user, providerId);
    if (!stored) {
      this.done('sign', actor, user, providerId, 'not_found');
      throw notFound(providerId);
    }
    const credential = await this.deps.sealed.open(stored);
    if (credential.type !== 'oauth1') {
      this.done('sign', actor, user, providerId, 'refused', stored.version);
      throw new InvalidRequestError('only OAuth 1.0a credentials sign requests');
    }
    try {
      const signature = signRequest(oauth1Client(provider), request, { ...options, token: credential.oauthToken, tokenSecret: credential.oauthTokenSecret });
      this.done('sign', actor, user, providerId, 'ok', stored.version);
      return signature;
    } catch (err) {
      this.done('sign', actor, user, providerId, 'refused', stored.version);
      throw err;
    }
  }

  /** POST .../refresh: refresh now, whatever the expiry. */
  async refresh(actor: Actor, user: string, providerId: string): Promise<CredentialMeta> {
    const stored = await this.deps.store.get(user, providerId);
    if (stored?.type === 'oauth1') throw new InvalidRequestError('OAuth 1.0a credentials do not expire and cannot be refreshed');
    const outcome = await this.deps.refresher.refresh(user, providerId, 'forced');
    if (outcome.kind === 'refreshed' || outcome.kind === 'fresh') {
      this.done('refresh', actor, user, providerId, 'ok', outcome.meta.version);
      return outcome.meta;
    }
    this.done('refresh', actor, user, providerId, outcome.kind === 'gone' ? 'not_found' : 'failed');
    throw outcomeError(outcome, providerId);
  }

  async list(user: string, allowed: (provider: string) => boolean): Promise<CredentialMeta[]> {
    return (await this.deps.store.list(user)).filter((meta) => allowed(meta.provider));
  }

  /**
   * Deletes a credential; 404 when there is none. When its provider has a revocationUrl, the
   * sealed tokens are queued for upstream revocation (RFC 7009) in the same step and revoked in
   * the background: the caller does not wait for the provider, and a provider outage or a crash
   * delays the revocation without losing it.
   */
  async delete(actor: Actor, user: string, providerId: string, expected: ExpectedVersion = ANY_VERSION): Promise<void> {
    let version: number | null;
    try {
      version = await this.remove(user, providerId, expected, { reason: 'deleted', actor });
    } catch (err) {
      this.done('delete', actor, user, providerId, 'failed');
      throw err;
    }
    if (version === null) {
      this.done('delete', actor, user, providerId, 'not_found');
      throw notFound(providerId);
    }
    this.done('delete', actor, user, providerId, 'ok', version);
  }

  /** Deletes every credential of `user` that `allowed` covers; returns the providers deleted. */
  async deleteAll(actor: Actor, user: string, allowed: (provider: string) => boolean): Promise<string[]> {
    const deleted: string[] = [];
    for (const meta of await this.list(user, allowed)) {
      const version = await this.remove(user, meta.provider, ANY_VERSION, { reason: 'deleted', actor });
      if (version !== null) {
        deleted.push(meta.provider);
        this.done('delete', actor, user, meta.provider, 'ok', version);
      }
    }
    return deleted;
  }

  /**
   * A provider said (by a verified webhook) that these accounts revoked the app: deletes the
   * credentials that carry them. The account index may name users whose credential moved on to
   * another account; each record is re-checked before it is deleted. Nothing is revoked
   * upstream: the provider already knows. Returns the users whose credential was deleted.
   */
  async revokeAccounts(actor: Actor, providerId: string, accountIds: string[]): Promise<string[]> {
    const deleted: string[] = [];
    for (const accountId of accountIds) {
      for (const user of await this.deps.store.usersOfAccount(providerId, accountId)) {
        const meta = await this.deps.store.meta(user, providerId);
        if (meta?.accountId !== accountId) {
          await this.unindex(providerId, accountId, user);
          continue;
        }
        const version = await this.remove(user, providerId, { kind: 'exact', version: meta.version }, { reason: 'provider_webhook', actor }).catch(
          (err: unknown) => {
            // Replaced since it was read: the new credential is not the one the provider revoked.
            if (err instanceof PreconditionFailedError) return null;
            throw err;
          },
        );
        if (version === null) continue;
        deleted.push(user);
        this.done('delete', actor, user, providerId, 'ok', version);
      }
    }
    return deleted;
  }

  /**
   * One delete with its consequences: the token.revoked event written with it, the upstream
   * revocation queued with it (when the provider has one and the caller, not the provider, asked),
   * the account index cleaned after it. Deleting without an expected version still deletes a
   * known version (the revocation record is named by it), retrying when a write slips between.
   */
  private async remove(user: string, providerId: string, expected: ExpectedVersion, removal: Removal): Promise<number | null> {
    const { store, revoker, clock } = this.deps;
    for (let attempt = 1; ; attempt++) {
      const meta = await store.meta(user, providerId);
      if (!meta) return null;
      const version = expected.kind === 'exact' ? expected.version : meta.version;
      const event = { id: newEventId(), at: clock.now(), reason: removal.reason, by: removal.actor.caller };
      const upstream = removal.reason === 'deleted' && meta.type === 'oauth2' && revoker.revokes(providerId);
      try {
        const deleted = await store.delete(user, providerId, { kind: 'exact', version }, { event, ...(upstream ? { revokeLeaseMs: revoker.leaseMs } : {}) });
        if (deleted === null) return null;
        if (upstream) revoker.startNow(user, providerId, deleted);
        if (meta.accountId !== null) {
          await this.unindex(providerId, meta.accountId, user).catch(() => this.deps.logger.warn({ user, provider: providerId }, 'account index entry left behind'));
        }
        this.deps.events.emit({ type: 'token.revoked', id: event.id, user, provider: providerId, reason: removal.reason, by: event.by, version: deleted });
        return deleted;
      } catch (err) {
        if (!(err instanceof PreconditionFailedError) || expected.kind === 'exact') throw err;
        if (attempt >= DELETE_ATTEMPTS) throw new UnavailableError('the credential kept changing while it was being deleted; retry', 1);
      }
    }
  }

  /**
   * Drops a user from an account's index entry, unless their credential carries the account
   * again by then (a reconnect raced the removal): re-checked after removing, and put back.
   */
  private async unindex(providerId: string, accountId: string, user: string): Promise<void> {
    const { store } = this.deps;
    await store.unindexAccount(providerId, accountId, user);
    if ((await store.meta(user, providerId))?.accountId === accountId) await store.indexAccount(providerId, accountId, user);
  }

  private done(
    operation: 'put' | 'reveal' | 'delete' | 'refresh' | 'sign',
    actor: Actor,
    user: string,
    provider: string,
    outcome: 'ok' | 'not_found' | 'refused' | 'failed',
    version?: number,
  ): void {
    this.deps.metrics.credentialOperations.inc({ operation, provider, outcome });
    const entry: AuditEntry = { action: `credential.${operation}`, caller: actor.caller, user, provider, outcome, request_id: actor.requestId };
    if (version !== undefined) entry.version = version;
    this.deps.audit.record(entry);
  }
}

function notFound(providerId: string): NotFoundError {
  return new NotFoundError(`no credential for this user and provider "${providerId}"`);
}

function reauthRequired(providerId: string): ReauthRequiredError {
  return new ReauthRequiredError(`the provider rejected the refresh token; the user must connect ${providerId} again`);
}

/** What a caller sees when a refresh could not give it a valid token. */
function outcomeError(outcome: Exclude<RefreshOutcome, { kind: 'refreshed' | 'fresh' }>, providerId: string): Error {
  switch (outcome.kind) {
    case 'gone':
      return notFound(providerId);
    case 'reauth_required':
      return reauthRequired(providerId);
    case 'no_refresh_token':
      return new ReauthRequiredError(`the access token has expired and there is no refresh token; the user must connect ${providerId} again`);
    case 'failed':
      return outcome.error === 'transient'
        ? new ProviderUnavailableError(`${providerId} is unavailable or slow; the token could not be refreshed`, outcome.retryAfterSeconds)
        : new ProviderError(`${providerId} refused the refresh request; operators have been alerted`);
  }
}
