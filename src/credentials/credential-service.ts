import type { Logger } from 'pino';
import type { Clock } from '../clock';
import type { ProviderConfig } from '../config/schema';
import { decodeEnvelope, type Envelope } from '../crypto/envelope';
import { CredentialUnreadableError, NotFoundError, ProviderUnavailableError, ReauthRequiredError } from '../errors';
import type { AuditLog } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { refreshAt, type ScheduleSettings } from '../refresh/schedule';
import { ANY_VERSION, type CredentialMeta, type CredentialStore, type ExpectedVersion, type StoredCredential } from '../store/credential-store';
import { decodeCredential, encodeCredential, type Credential } from './credential';

/** Who asks: recorded in audit entries. */
export interface Actor {
  caller: string;
  requestId: string;
}

export interface CredentialServiceDeps {
  store: CredentialStore;
  envelope: Envelope;
  clock: Clock;
  audit: AuditLog;
  metrics: Metrics;
  logger: Logger;
  schedule: ScheduleSettings;
  random?: () => number;
}

/**
 * Stores, reveals, lists and deletes credentials: sealing on the way in, opening on the way out,
 * an audit entry for every write, delete and reveal. Endpoints validate input and check the
 * caller's rights before they call it.
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
    const { store, envelope, clock } = this.deps;
    const blob = await envelope.seal(encodeCredential(credential), { user, provider: providerId });
    const kekId = decodeEnvelope(blob).kekId;
    const oauth2 = credential.type === 'oauth2' ? credential : null;
    const write = {
      user,
      provider: providerId,
      type: credential.type,
      state: 'active' as const,
      kekId,
      blob,
      expiresAt: oauth2?.expiresAt ?? null,
      refreshAt: this.refreshAtFor(credential, provider),
      scope: oauth2?.scope ?? null,
      accountId: credential.accountId,
      now: clock.now(),
    };
    try {
      const { version, created, createdAt } = await store.put(write, expected);
      this.done('put', actor, user, providerId, 'ok', version);
      const { blob: _sealed, now, ...meta } = write;
      return { meta: { ...meta, version, createdAt, updatedAt: now }, created };
    } catch (err) {
      this.done('put', actor, user, providerId, 'failed');
      throw err;
    }
  }

  /**
   * The credential to hand out. An OAuth 2.0 access token past its expiry is not handed out:
   * without a refresh token the user must connect again (409); with one it needs a refresh,
   * which this version does not perform yet (503, retryable once refresh exists).
   */
  async reveal(actor: Actor, user: string, providerId: string): Promise<{ meta: CredentialMeta; credential: Credential }> {
    const stored = await this.deps.store.get(user, providerId);
    if (!stored) {
      this.done('reveal', actor, user, providerId, 'not_found');
      throw new NotFoundError(`no credential for this user and provider "${providerId}"`);
    }
    if (stored.state === 'reauth_required') {
      this.done('reveal', actor, user, providerId, 'refused', stored.version);
      throw new ReauthRequiredError(`the provider rejected the refresh token; the user must connect ${providerId} again`);
    }
    const credential = await this.open(stored);
    if (credential.type === 'oauth2' && credential.expiresAt !== null && credential.expiresAt <= this.deps.clock.now()) {
      this.done('reveal', actor, user, providerId, 'refused', stored.version);
      if (credential.refreshToken === null) {
        throw new ReauthRequiredError(`the access token has expired and there is no refresh token; the user must connect ${providerId} again`);
      }
      throw new ProviderUnavailableError('the access token has expired and this version of the vault cannot refresh it yet', 60);
    }
    const { blob: _sealed, ...meta } = stored;
    this.done('reveal', actor, user, providerId, 'ok', stored.version);
    return { meta, credential };
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
      throw new NotFoundError(`no credential for this user and provider "${providerId}"`);
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

  private async open(stored: StoredCredential): Promise<Credential> {
    const { user, provider } = stored;
    try {
      return decodeCredential(await this.deps.envelope.open(stored.blob, { user, provider }));
    } catch (err) {
      if (err instanceof CredentialUnreadableError) {
        this.deps.metrics.decryptFailures.inc({ reason: err.reason });
        this.deps.logger.error({ user, provider, version: stored.version, kek: stored.kekId, reason: err.reason }, 'stored credential failed to open');
      }
      throw err;
    }
  }

  private refreshAtFor(credential: Credential, provider: ProviderConfig): number | null {
    if (credential.type !== 'oauth2' || credential.refreshToken === null || provider.type !== 'oauth2') return null;
    return refreshAt(credential.issuedAt, credential.expiresAt, provider.defaultLifetimeSeconds, this.deps.schedule, this.deps.random);
  }

  private done(operation: 'put' | 'reveal' | 'delete', actor: Actor, user: string, provider: string, outcome: 'ok' | 'not_found' | 'refused' | 'failed', version?: number): void {
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
