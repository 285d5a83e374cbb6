import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../clock';
import { isAppProvider, type OAuth2ProviderConfig, type ProviderConfig } from '../config/schema';
import { APP_USER, type OAuth2Credential } from '../credentials/credential';
import type { SealedCredentials } from '../credentials/sealed-credentials';
import { CredentialUnreadableError, PreconditionFailedError } from '../errors';
import { newEventId, type DomainEvent, type EventBus } from '../events/event-bus';
import type { Metrics } from '../observability/metrics';
import { standardHooks, type ProviderHooks } from '../providers/hooks';
import type { OAuth2Client, RefreshResult, TokenSet } from '../providers/oauth2-client';
import { Secret } from '../secret';
import type { CredentialMeta, CredentialStore, StoredCredential } from '../store/credential-store';
import { dueMember } from '../store/keys';
import { backoffMs } from './backoff';

export type RefreshTrigger = 'scheduled' | 'on_demand' | 'forced';

/**
 * What a refresh request ended with:
 *   refreshed         this call refreshed it
 *   fresh             no provider call was needed (another caller or replica just refreshed it,
 *                     or it was not due after all); the current credential is returned
 *   reauth_required   the provider rejected the refresh token (now or earlier)
 *   no_refresh_token  there is nothing to refresh with
 *   gone              the credential does not exist (any more)
 *   failed            transient: provider down, slow, rate-limiting, or another replica's refresh
 *                     did not finish in time; provider_error: the provider refused the client or
 *                     answered something unusable
 */
export type RefreshOutcome =
  | { kind: 'refreshed'; meta: CredentialMeta; credential: OAuth2Credential }
  | { kind: 'fresh'; meta: CredentialMeta; credential: OAuth2Credential }
  | { kind: 'reauth_required' }
  | { kind: 'no_refresh_token' }
  | { kind: 'gone' }
  | { kind: 'failed'; error: 'transient' | 'provider_error'; retryAfterSeconds: number };

/** Decides, with the record re-read under the lease, that no provider call is needed. */
export type FreshnessCheck = (stored: StoredCredential, credential: OAuth2Credential) => boolean;

export interface RefreshSettings {
  leaseSeconds: number;
  maxBackoffSeconds: number;
  /** Emit token.refresh_failed once a credential has been failing this long. */
  failedEventAfterSeconds: number;
  /** How long an on-demand caller waits for another replica's refresh before answering 503. */
  waitForOtherMs: number;
  waitReplicas: number;
}

export interface RefresherDeps {
  store: CredentialStore;
  sealed: SealedCredentials;
  client: OAuth2Client;
  events: EventBus;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  providers: ReadonlyMap<string, ProviderConfig>;
  hooks?: (providerId: string) => ProviderHooks;
  /** Tokens a refresh minted for a credential deleted meanwhile: queued for upstream revocation. */
  orphans?: (user: string, providerId: string, credential: OAuth2Credential) => Promise<void>;
  settings: RefreshSettings;
  /** Identifies this replica in lease owner tokens. */
  replicaId: string;
  random?: () => number;
}

/** An on-demand probe of a failing credential at most this often (DESIGN §7). */
export const PROBE_GAP_MS = 2000;
/** Retry-After handed to callers is capped like the scheduler's backoff floor. */
const MAX_RETRY_AFTER_SECONDS = 3600;

/** Counting semaphore: provider calls in flight per provider on this replica (maxConcurrency). */
class Permits {
  private inUse = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async acquire(): Promise<() => void> {
    if (this.inUse >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.inUse++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.inUse--;
    };
  }
}

/**
 * Refreshes OAuth 2.0 credentials, exactly one provider call at a time per credential across
 * every replica: one in-process promise per credential (callers on this replica share it) and a
 * Redis lease (callers on other replicas wait for the holder's result). The record is re-read
 * under the lease, the lease re-checked right before the provider call, and every write is a
 * compare-and-set on the version read, so a slow or superseded refresh never overwrites a newer
 * credential nor revives a deleted one. A rotated refresh token is written (and, with
 * waitReplicas, acknowledged by replicas) before the new access token goes to anyone.
 */
export class Refresher {
  private readonly inflight = new Map<string, Promise<RefreshOutcome>>();
  private readonly permits = new Map<string, Permits>();
  private readonly random: () => number;

  constructor(private readonly deps: RefresherDeps) {
    this.random = deps.random ?? Math.random;
  }

  /** A new lease owner token: unique per attempt, so a replica never mistakes an old lease for its own. */
  newOwner(): string {
    return `${this.deps.replicaId}:${randomUUID()}`;
  }

  /** On-demand or forced: takes (or waits for) the lease, then refreshes unless `isFresh` says no need. */
  refresh(user: string, providerId: string, trigger: 'on_demand' | 'forced', isFresh?: FreshnessCheck): Promise<RefreshOutcome> {
    return this.singleFlight(user, providerId, () => this.leaseAndRun(user, providerId, trigger, isFresh, false));
  }

  /**
   * The app token of a client-credentials provider, minted when there is none yet: the lease is
   * taken on the missing record, so one replica mints while the others wait for its write.
   */
  appToken(providerId: string, isFresh: FreshnessCheck): Promise<RefreshOutcome> {
    return this.singleFlight(APP_USER, providerId, () => this.leaseAndRun(APP_USER, providerId, 'on_demand', isFresh, true));
  }

  /** Scheduled: the scheduler's claim already holds the lease for `owner`. */
  async refreshClaimed(user: string, providerId: string, owner: string, now: number): Promise<RefreshOutcome> {
    const running = this.inflight.get(dueMember(user, providerId));
    if (running) {
      // This replica is refreshing it on demand already; give the claim back once that is done.
      const outcome = await running;
      await this.deps.store.releaseLease(user, providerId, owner);
      return outcome;
    }
    // A PUT or refresh since the entry came due moved refresh_at forward: the entry was stale.
    const notDueYet: FreshnessCheck = (stored) => stored.refreshAt !== null && stored.refreshAt > now + 1000;
    return this.singleFlight(user, providerId, () => this.run(user, providerId, owner, 'scheduled', notDueYet));
  }

  private singleFlight(user: string, providerId: string, start: () => Promise<RefreshOutcome>): Promise<RefreshOutcome> {
    const key = dueMember(user, providerId);
    const running = this.inflight.get(key);
    if (running) return running;
    const attempt = start().finally(() => this.inflight.delete(key));
    this.inflight.set(key, attempt);
    return attempt;
  }

  private async leaseAndRun(user: string, providerId: string, trigger: 'on_demand' | 'forced', isFresh: FreshnessCheck | undefined, create: boolean): Promise<RefreshOutcome> {
    const { store, settings } = this.deps;
    const owner = this.newOwner();
    const giveUpAt = Date.now() + settings.waitForOtherMs;
    // The version seen while another caller held the lease (0: no record yet, an app token being minted).
    let versionWhileHeld: number | null = null;
    for (;;) {
      if (create) {
        // A mint failed a moment ago (here or on another replica): answer its outcome, do not call again.
        const backoff = await store.mintBackoffMs(user, providerId);
        if (backoff > 0) {
          this.count(providerId, trigger, 'backoff');
          return { kind: 'failed', error: 'transient', retryAfterSeconds: Math.max(1, Math.ceil(backoff / 1000)) };
        }
      }
      const lease = await store.acquireLease(user, providerId, settings.leaseSeconds * 1000, owner, trigger === 'on_demand' ? PROBE_GAP_MS : 0, create);
      if (lease.status === 'acquired') return this.run(user, providerId, owner, trigger, isFresh, create);
      if (lease.status === 'absent') return { kind: 'gone' };
      if (lease.status === 'too_soon') {
        this.count(providerId, trigger, 'backoff');
        return { kind: 'failed', error: 'transient', retryAfterSeconds: Math.max(1, Math.ceil(lease.retryInMs / 1000)) };
      }
      // Another caller holds the lease: wait for its result instead of calling the provider too.
      const stored = await store.get(user, providerId);
      if (!stored && !create) return { kind: 'gone' };
      if (stored?.state === 'reauth_required') return { kind: 'reauth_required' };
      if (versionWhileHeld === null) versionWhileHeld = stored?.version ?? 0;
      else if ((stored?.version ?? 0) !== versionWhileHeld) return stored ? this.current(stored) : { kind: 'gone' };
      if (Date.now() >= giveUpAt) {
        this.count(providerId, trigger, 'busy');
        return { kind: 'failed', error: 'transient', retryAfterSeconds: Math.max(1, Math.ceil(lease.retryInMs / 1000)) };
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, lease.retryInMs)));
    }
  }

  /** Under the lease: re-read, decide, call the provider, write the outcome. */
  private async run(user: string, providerId: string, owner: string, trigger: RefreshTrigger, isFresh?: FreshnessCheck, create = false): Promise<RefreshOutcome> {
    const { store, sealed, logger, settings } = this.deps;
    const release = () => store.releaseLease(user, providerId, owner);
    const stored = await store.get(user, providerId);
    if (!stored) {
      const provider = this.deps.providers.get(providerId);
      if (create && isAppProvider(provider)) return this.mint(providerId, provider, owner, trigger);
      await release();
      return { kind: 'gone' };
    }
    if (stored.state === 'reauth_required') {
      await release();
      return { kind: 'reauth_required' };
    }
    const provider = this.deps.providers.get(providerId);
    if (!provider || provider.type !== 'oauth2') {
      // Removed from the configuration: park it rather than spin on it.
      await store.recordFailure(user, providerId, stored.version, owner, this.retryFailure(settings.maxBackoffSeconds * 1000, 'provider not configured for oauth2'));
      return { kind: 'no_refresh_token' };
    }
    let credential: OAuth2Credential;
    try {
      const opened = await sealed.open(stored);
      if (opened.type !== 'oauth2') {
        await release();
        return { kind: 'no_refresh_token' };
      }
      credential = opened;
    } catch (err) {
      if (err instanceof CredentialUnreadableError) {
        await store.recordFailure(user, providerId, stored.version, owner, this.retryFailure(settings.maxBackoffSeconds * 1000, 'credential unreadable'));
      } else {
        await release();
      }
      throw err;
    }
    const { blob: _sealed, ...meta } = stored;
    if (isFresh?.(stored, credential)) {
      await release();
      return { kind: 'fresh', meta, credential };
    }
    const appToken = provider.grant === 'client_credentials';
    const { refreshToken } = credential;
    if (refreshToken === null && !appToken) {
      await release();
      return { kind: 'no_refresh_token' };
    }
    if (!appToken && credential.refreshExpiresAt !== null && credential.refreshExpiresAt <= this.deps.clock.now()) {
      // Its end is known: asking the provider would only be told invalid_grant.
      return this.failed(stored, { outcome: 'invalid_grant', reason: 'refresh token expired' }, owner, trigger);
    }
    const hooks = this.deps.hooks?.(providerId) ?? standardHooks;
    const result = await this.callProvider(user, providerId, provider, owner, trigger, () =>
      refreshToken === null || appToken ? this.deps.client.clientCredentials(provider, hooks) : this.deps.client.refresh(provider, refreshToken, hooks),
    );
    if (result === 'lease_lost') return { kind: 'failed', error: 'transient', retryAfterSeconds: 1 };
    if (result.outcome === 'ok') return this.succeeded(stored, credential, provider, result, owner, trigger);
    logger.warn({ user, provider: providerId, trigger, outcome: result.outcome, reason: result.reason }, 'refresh failed');
    // An app token has no user to send back to the provider's login: a refused grant is a
    // provider-level error to retry, never reauth_required.
    return this.failed(stored, appToken && result.outcome === 'invalid_grant' ? { outcome: 'error', reason: result.reason } : result, owner, trigger);
  }

  /**
   * One provider call under the lease and a maxConcurrency permit (every provider call from this
   * replica, scheduled or on demand, takes one). Compare-and-set stops a stale write; only the
   * lease stops a second provider call, so it is checked after the wait for a permit, which may
   * have outlasted it.
   */
  private async callProvider(
    user: string,
    providerId: string,
    provider: OAuth2ProviderConfig,
    owner: string,
    trigger: RefreshTrigger,
    call: () => Promise<RefreshResult>,
  ): Promise<RefreshResult | 'lease_lost'> {
    let permits = this.permits.get(providerId);
    if (!permits) this.permits.set(providerId, (permits = new Permits(provider.maxConcurrency)));
    const done = await permits.acquire();
    try {
      if (!(await this.deps.store.leaseHeld(user, providerId, owner))) {
        this.count(providerId, trigger, 'lease_lost');
        return 'lease_lost';
      }
      const stop = this.deps.metrics.refreshDuration.startTimer({ provider: providerId });
      try {
        return await call();
      } finally {
        stop();
      }
    } finally {
      done();
    }
  }

  /** Mints the first app token of a client-credentials provider, under a lease on the missing record. */
  private async mint(providerId: string, provider: OAuth2ProviderConfig, owner: string, trigger: RefreshTrigger): Promise<RefreshOutcome> {
    const { store, logger } = this.deps;
    const hooks = this.deps.hooks?.(providerId) ?? standardHooks;
    const result = await this.callProvider(APP_USER, providerId, provider, owner, trigger, () => this.deps.client.clientCredentials(provider, hooks));
    if (result === 'lease_lost') return { kind: 'failed', error: 'transient', retryAfterSeconds: 1 };
    if (result.outcome !== 'ok') {
      // No record to keep the failure on: a backoff key stops every replica from calling again
      // for the probe gap (or the provider's Retry-After), then the lease is given back.
      const retryAfter = result.outcome === 'transient' ? result.retryAfterSeconds : null;
      await store.backOffMint(APP_USER, providerId, Math.max(PROBE_GAP_MS, (retryAfter ?? 0) * 1000));
      await store.releaseLease(APP_USER, providerId, owner);
      this.count(providerId, trigger, result.outcome);
      const line = { provider: providerId, trigger, outcome: result.outcome, reason: result.reason };
      if (result.outcome === 'invalid_client') logger.error(line, 'minting an app token failed: the provider refused every configured client secret');
      else logger.warn(line, 'minting an app token failed');
      return { kind: 'failed', error: result.outcome === 'transient' ? 'transient' : 'provider_error', retryAfterSeconds: Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, retryAfter ?? 1)) };
    }
    const now = this.deps.clock.now();
    const credential: OAuth2Credential = { type: 'oauth2', ...tokenFields(result.tokens, provider, now, null), accountId: null, metadata: null };
    try {
      const { meta } = await this.deps.sealed.write(APP_USER, providerId, provider, credential, { kind: 'absent' });
      this.count(providerId, trigger, 'ok');
      return { kind: 'refreshed', meta, credential };
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      return this.afterChange(APP_USER, providerId);
    }
  }

  private async succeeded(
    stored: StoredCredential,
    credential: OAuth2Credential,
    provider: OAuth2ProviderConfig,
    result: Extract<RefreshResult, { outcome: 'ok' }>,
    owner: string,
    trigger: RefreshTrigger,
  ): Promise<RefreshOutcome> {
    const { user, provider: providerId } = stored;
    const { tokens } = result;
    const now = this.deps.clock.now();
    const refreshed: OAuth2Credential = { ...credential, ...tokenFields(tokens, provider, now, credential) };
    const recoveredId = newEventId();
    let written: { meta: CredentialMeta; recovered: boolean };
    try {
      written = await this.deps.sealed.write(user, providerId, provider, refreshed, { kind: 'exact', version: stored.version }, {
        eventId: recoveredId,
        failedAfterMs: this.deps.settings.failedEventAfterSeconds * 1000,
      });
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      // Replaced or deleted while we were at the provider: that write wins.
      this.count(providerId, trigger, 'superseded');
      await this.deps.store.releaseLease(user, providerId, owner);
      const current = await this.deps.store.get(user, providerId);
      if (current) return this.current(current);
      // Deleted: the tokens just minted belong to nobody, so the provider is told to drop them too.
      await this.deps.orphans?.(user, providerId, refreshed);
      return { kind: 'gone' };
    }
    const { meta } = written;
    if (tokens.refreshToken !== null && this.deps.settings.waitReplicas > 0) await this.waitForReplicas(user, providerId);
    if (result.secretIndex > 0) this.deps.logger.warn({ provider: providerId, secret: result.secretIndex }, 'the first client secret was refused; a later one worked');
    this.count(providerId, trigger, 'ok');
    this.emit({ type: 'token.refreshed', user, provider: providerId, version: meta.version, expires_at: iso(refreshed.expiresAt) });
    if (written.recovered) {
      this.emit({ type: 'token.refresh_recovered', id: recoveredId, user, provider: providerId, failing_since: iso(stored.failingSince)!, attempts: stored.failures });
    }
    return { kind: 'refreshed', meta, credential: refreshed };
  }

  private async failed(stored: StoredCredential, result: Exclude<RefreshResult, { outcome: 'ok' }>, owner: string, trigger: RefreshTrigger): Promise<RefreshOutcome> {
    const { user, provider: providerId } = stored;
    const { store, settings } = this.deps;
    this.count(providerId, trigger, result.outcome);
    if (result.outcome === 'invalid_grant') {
      const failure = { kind: 'reauth' as const, delayMs: 0, reason: result.reason, eventId: newEventId(), failedAfterMs: 0 };
      const written = await store.recordFailure(user, providerId, stored.version, owner, failure);
      if (written.event === 'token.reauth_required') {
        this.emit({ type: 'token.reauth_required', id: failure.eventId, user, provider: providerId, reason: 'the provider rejected the refresh token' });
      }
      return written.applied ? { kind: 'reauth_required' } : this.afterChange(user, providerId);
    }
    if (result.outcome === 'invalid_client') {
      this.deps.logger.error({ provider: providerId }, 'the provider refused every configured client secret (invalid_client): check the provider configuration');
    }
    const retryAfter = result.outcome === 'transient' ? result.retryAfterSeconds : null;
    const delay = backoffMs(stored.failures + 1, settings.maxBackoffSeconds, retryAfter, this.random);
    const failure = this.retryFailure(delay, result.reason);
    const written = await store.recordFailure(user, providerId, stored.version, owner, failure);
    if (!written.applied) return this.afterChange(user, providerId);
    if (written.event === 'token.refresh_failed') {
      this.emit({ type: 'token.refresh_failed', id: failure.eventId, user, provider: providerId, reason: result.reason, failing_since: iso(written.failingSince)!, attempts: written.failures });
    }
    return {
      kind: 'failed',
      error: result.outcome === 'transient' ? 'transient' : 'provider_error',
      retryAfterSeconds: Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, retryAfter ?? Math.ceil(PROBE_GAP_MS / 1000))),
    };
  }

  /** The credential changed while we were at the provider; answer with what is there now. */
  private async afterChange(user: string, providerId: string): Promise<RefreshOutcome> {
    const current = await this.deps.store.get(user, providerId);
    return current ? this.current(current) : { kind: 'gone' };
  }

  private async current(stored: StoredCredential): Promise<RefreshOutcome> {
    if (stored.state === 'reauth_required') return { kind: 'reauth_required' };
    const credential = await this.deps.sealed.open(stored);
    if (credential.type !== 'oauth2') return { kind: 'no_refresh_token' };
    const { blob: _sealed, ...meta } = stored;
    return { kind: 'fresh', meta, credential };
  }

  private async waitForReplicas(user: string, provider: string): Promise<void> {
    const wanted = this.deps.settings.waitReplicas;
    const acked = await this.deps.store.waitForReplicas(user, wanted, 1000).catch(() => 0);
    if (acked < wanted) {
      this.deps.metrics.waitShortfalls.inc();
      this.deps.logger.warn({ user, provider, wanted, acked }, 'a rotated refresh token was acknowledged by fewer Redis replicas than redis.waitReplicas');
    }
  }

  /** A failure to retry after `delayMs`; it announces token.refresh_failed once past the threshold. */
  private retryFailure(delayMs: number, reason: string) {
    return { kind: 'retry' as const, delayMs, reason, eventId: newEventId(), failedAfterMs: this.deps.settings.failedEventAfterSeconds * 1000 };
  }

  private count(provider: string, trigger: RefreshTrigger, outcome: string): void {
    this.deps.metrics.refreshes.inc({ provider, trigger, outcome });
  }

  private emit(event: DomainEvent): void {
    this.deps.events.emit(event);
  }
}

/**
 * The token fields of a credential after a token answer at `now`. Without a new refresh token
 * the old one stays valid (RFC 6749 §6), and so does what was known of its end, unless the
 * answer says how long it has left (LinkedIn reports `refresh_token_expires_in` on every refresh).
 */
export function tokenFields(
  tokens: TokenSet,
  provider: OAuth2ProviderConfig,
  now: number,
  previous: OAuth2Credential | null,
): Pick<OAuth2Credential, 'accessToken' | 'refreshToken' | 'idToken' | 'tokenType' | 'scope' | 'issuedAt' | 'expiresAt' | 'refreshExpiresAt'> {
  const rotated = tokens.refreshToken !== null;
  let refreshExpiresAt = rotated ? null : (previous?.refreshExpiresAt ?? null);
  if (tokens.refreshExpiresIn !== null) refreshExpiresAt = now + tokens.refreshExpiresIn * 1000;
  else if (rotated && provider.refreshTokenLifetimeSeconds !== undefined) refreshExpiresAt = now + provider.refreshTokenLifetimeSeconds * 1000;
  return {
    accessToken: new Secret(tokens.accessToken),
    refreshToken: tokens.refreshToken !== null ? new Secret(tokens.refreshToken) : (previous?.refreshToken ?? null),
    idToken: tokens.idToken === null ? (previous?.idToken ?? null) : new Secret(tokens.idToken),
    tokenType: tokens.tokenType ?? previous?.tokenType ?? 'Bearer',
    scope: tokens.scope ?? previous?.scope ?? null,
    issuedAt: now,
    expiresAt: tokens.expiresIn === null ? null : now + tokens.expiresIn * 1000,
    refreshExpiresAt,
  };
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
