import type { Clock } from '../clock';
import type { ProviderConfig } from '../config/schema';
import { InvalidRequestError, NotFoundError, ProviderError, ProviderUnavailableError, ReauthRequiredError } from '../errors';
import type { AuditLog } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { RefreshOutcome, Refresher } from '../refresh/refresher';
import { ANY_VERSION, type CredentialMeta, type CredentialStore, type ExpectedVersion } from '../store/credential-store';
import type { Credential, OAuth2Credential } from './credential';
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
  clock: Clock;
  audit: AuditLog;
  metrics: Metrics;
}

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
      const written = await this.deps.sealed.write(user, providerId, provider, credential, expected);
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
   * is still valid, the old one is returned with `stale: true`.
   */
  async reveal(actor: Actor, user: string, providerId: string, minTtlSeconds = DEFAULT_MIN_TTL_SECONDS): Promise<{ meta: CredentialMeta; credential: Credential; stale: boolean }> {
    const { store, sealed, clock } = this.deps;
    const stored = await store.get(user, providerId);
    if (!stored) {
      this.done('reveal', actor, user, providerId, 'not_found');
      throw notFound(providerId);
    }
    if (stored.state === 'reauth_required') {
      this.done('reveal', actor, user, providerId, 'refused', stored.version);
      throw reauthRequired(providerId);
    }
    const credential = await sealed.open(stored);
    const { blob: _sealed, ...meta } = stored;
    if (credential.type === 'oauth1' || !needsRefresh(credential, minTtlSeconds, clock.now())) {
      this.done('reveal', actor, user, providerId, 'ok', stored.version);
      return { meta, credential, stale: false };
    }
    const outcome =
      credential.refreshToken === null
        ? ({ kind: 'no_refresh_token' } as const)
        : await this.deps.refresher.refresh(user, providerId, 'on_demand', (_, current) => !needsRefresh(current, minTtlSeconds, clock.now()));
    if (outcome.kind === 'refreshed' || outcome.kind === 'fresh') {
      this.done('reveal', actor, user, providerId, 'ok', outcome.meta.version);
      return { meta: outcome.meta, credential: outcome.credential, stale: false };
    }
    const stillValid = credential.expiresAt !== null && credential.expiresAt > clock.now();
    if (stillValid && (outcome.kind === 'failed' || outcome.kind === 'no_refresh_token')) {
      this.done('reveal', actor, user, providerId, 'ok', stored.version);
      return { meta, credential, stale: outcome.kind === 'failed' };
    }
    this.done('reveal', actor, user, providerId, 'refused', stored.version);
    throw outcomeError(outcome, providerId);
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

  async delete(actor: Actor, user: string, providerId: string, expected: ExpectedVersion = ANY_VERSION): Promise<void> {
    let version: number | null;
    try {
      version = await this.deps.store.delete(user, providerId, expected);
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
      const version = await this.deps.store.delete(user, meta.provider);
      if (version !== null) {
        deleted.push(meta.provider);
        this.done('delete', actor, user, meta.provider, 'ok', version);
      }
    }
    return deleted;
  }

  private done(
    operation: 'put' | 'reveal' | 'delete' | 'refresh',
    actor: Actor,
    user: string,
    provider: string,
    outcome: 'ok' | 'not_found' | 'refused' | 'failed',
    version?: number,
  ): void {
    this.deps.metrics.credentialOperations.inc({ operation, provider, outcome });
    this.deps.audit.record({
      action: `credential.${operation}`,
      caller: actor.caller,
      user,
      provider,
      outcome,
      request_id: actor.requestId,
      ...(version === undefined ? {} : { version }),
    });
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
