import type { Logger } from 'pino';
import type { ProviderConfig } from '../config/schema';
import type { AuditLog } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { OAuth2Client, RevokeResult } from '../providers/oauth2-client';
import type { Secret } from '../secret';
import type { CredentialStore } from '../store/credential-store';
import { parseRevocationMember } from '../store/keys';
import type { OAuth2Credential } from './credential';
import type { SealedCredentials } from './sealed-credentials';

/**
 * Seconds before each retry of an upstream revocation that failed for a transient reason (5xx,
 * 429, timeout, network); a provider's longer Retry-After wins. After the last one, about 22
 * hours in, the vault gives up, logs an error and counts it.
 */
export const REVOCATION_RETRY_SECONDS = [1, 5, 30, 120, 600, 1800, 3600, 10_800, 21_600, 43_200] as const;
const MAX_RETRY_AFTER_SECONDS = 3600;

export interface RevokerDeps {
  store: CredentialStore;
  sealed: SealedCredentials;
  client: OAuth2Client;
  providers: ReadonlyMap<string, ProviderConfig>;
  metrics: Metrics;
  logger: Logger;
  audit: AuditLog;
  replicaId: string;
  /** The lease a revocation is born with (the replica that queued it revokes at once; others after that). */
  leaseMs: number;
}

type Outcome = 'revoked' | 'retry' | 'gave_up' | 'skipped';

/**
 * Tells providers that deleted credentials are dead (RFC 7009): the refresh token first, with
 * its `token_type_hint`, then the access token. A deleted credential waits, still sealed, in
 * its shard's revocation queue until that is done: the replica that deleted it revokes at once,
 * and failures are retried by the scheduler on every replica (claim-due takes due revocations
 * too), so a provider outage or a replica crash delays a revocation but does not lose it.
 */
export class Revoker {
  constructor(private readonly deps: RevokerDeps) {}

  /** Whether deleting this provider's credentials queues an upstream revocation. */
  revokes(providerId: string): boolean {
    const provider = this.deps.providers.get(providerId);
    return provider?.type === 'oauth2' && provider.revocationUrl !== undefined;
  }

  /** The lease a new queue entry gets: this replica revokes it now, others once it ends. */
  get leaseMs(): number {
    return this.deps.leaseMs;
  }

  /** Revokes a queued credential now, in the background (a DELETE does not wait for the provider). */
  startNow(user: string, providerId: string, version: number): void {
    void this.run(user, providerId, version).catch((err: unknown) =>
      this.deps.logger.error({ user, provider: providerId, err: describe(err) }, 'upstream revocation failed unexpectedly; it is retried when its lease ends'),
    );
  }

  /** A queue entry the scheduler claimed. */
  async runClaimed(member: string): Promise<void> {
    const parsed = parseRevocationMember(member);
    if (parsed) await this.run(parsed.user, parsed.provider, parsed.version);
  }

  /** Tokens a refresh minted for a credential deleted meanwhile: nobody holds them, so they are revoked too. */
  async revokeOrphans(user: string, providerId: string, credential: OAuth2Credential): Promise<void> {
    if (!this.revokes(providerId)) return;
    const sealed = await this.deps.sealed.seal(user, providerId, credential);
    const version = await this.deps.store.queueRevocation(user, providerId, sealed, this.deps.leaseMs);
    this.deps.logger.warn({ user, provider: providerId }, 'a refresh finished after its credential was deleted; revoking the tokens it obtained');
    this.startNow(user, providerId, version);
  }

  private async run(user: string, providerId: string, version: number): Promise<void> {
    const { store, logger } = this.deps;
    const pending = await store.getRevocation(user, providerId, version);
    if (!pending) return;
    const provider = this.deps.providers.get(providerId);
    if (provider?.type !== 'oauth2' || provider.revocationUrl === undefined) {
      return this.finish(user, providerId, version, 'skipped', 'the provider has no revocationUrl (any more)');
    }
    let tokens: [Secret, 'refresh_token' | 'access_token'][];
    try {
      const credential = await this.deps.sealed.open({ user, provider: providerId, version, kekId: pending.kekId, blob: pending.blob });
      if (credential.type !== 'oauth2') return this.finish(user, providerId, version, 'skipped', 'OAuth 1.0a tokens have no revocation endpoint');
      tokens = [];
      if (credential.refreshToken) tokens.push([credential.refreshToken, 'refresh_token']);
      tokens.push([credential.accessToken, 'access_token']);
    } catch {
      // Logged and counted by sealed.open; an unreadable record cannot be revoked by anyone.
      return this.finish(user, providerId, version, 'gave_up', 'the deleted credential could not be opened');
    }

    for (const [token, hint] of tokens) {
      const result = await this.deps.client.revoke({ ...provider, revocationUrl: provider.revocationUrl }, token, hint);
      if (result.outcome === 'revoked') continue;
      if (result.outcome === 'error') return this.finish(user, providerId, version, 'gave_up', `the provider refused the revocation: ${result.reason}`);
      return this.retry(pending.attempts, user, providerId, version, result, new URL(provider.revocationUrl).host);
    }
    logger.info({ user, provider: providerId }, 'revoked upstream');
    return this.finish(user, providerId, version, 'revoked', 'ok');
  }

  private async retry(
    attempts: number,
    user: string,
    providerId: string,
    version: number,
    result: Extract<RevokeResult, { outcome: 'transient' }>,
    host: string,
  ): Promise<void> {
    const delay = REVOCATION_RETRY_SECONDS[attempts];
    if (delay === undefined) return this.finish(user, providerId, version, 'gave_up', `still failing after ${attempts + 1} attempts: ${result.reason}`);
    const seconds = Math.max(delay, Math.min(result.retryAfterSeconds ?? 0, MAX_RETRY_AFTER_SECONDS));
    await this.deps.store.retryRevocation(user, providerId, version, seconds * 1000, result.reason);
    this.deps.metrics.revocations.inc({ provider: providerId, outcome: 'retry' });
    this.deps.logger.warn({ user, provider: providerId, reason: result.reason, retry_in_s: seconds, host }, 'upstream revocation failed; will retry');
  }

  private async finish(user: string, providerId: string, version: number, outcome: Exclude<Outcome, 'retry'>, reason: string): Promise<void> {
    if (!(await this.deps.store.finishRevocation(user, providerId, version))) return;
    this.deps.metrics.revocations.inc({ provider: providerId, outcome });
    if (outcome === 'gave_up') this.deps.logger.error({ user, provider: providerId, reason }, 'gave up revoking a deleted credential upstream; revoke it at the provider by hand');
    this.deps.audit.record({
      action: 'credential.revoke',
      caller: `replica:${this.deps.replicaId}`,
      user,
      provider: providerId,
      outcome: outcome === 'gave_up' ? 'failed' : 'ok',
      result: outcome,
      reason,
    });
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
