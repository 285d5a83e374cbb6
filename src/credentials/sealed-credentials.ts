import type { Logger } from 'pino';
import type { Clock } from '../clock';
import type { ProviderConfig } from '../config/schema';
import { decodeEnvelope, type Envelope } from '../crypto/envelope';
import { CredentialUnreadableError } from '../errors';
import type { Metrics } from '../observability/metrics';
import { refreshAt, type ScheduleSettings } from '../refresh/schedule';
import { ANY_VERSION, type CredentialMeta, type CredentialStore, type CredentialWrite, type ExpectedVersion, type StoredCredential } from '../store/credential-store';
import { decodeCredential, encodeCredential, type Credential } from './credential';

export interface SealedCredentialsDeps {
  store: CredentialStore;
  envelope: Envelope;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  schedule: ScheduleSettings;
  random?: () => number;
}

/**
 * Credentials in and out of their sealed form: sealing and scheduling on write, opening (with a
 * metric and a log line for every record that fails to open) on read. Used by the credential
 * service for callers' writes and by the refresher for its own.
 */
export class SealedCredentials {
  constructor(private readonly deps: SealedCredentialsDeps) {}

  async write(
    user: string,
    providerId: string,
    provider: ProviderConfig,
    credential: Credential,
    expected: ExpectedVersion = ANY_VERSION,
    recovery?: CredentialWrite['recovery'],
  ): Promise<{ meta: CredentialMeta; created: boolean; recovered: boolean }> {
    const { blob, kekId } = await this.seal(user, providerId, credential);
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
      now: this.deps.clock.now(),
      ...(recovery ? { recovery } : {}),
    };
    const { version, created, createdAt, recovered } = await this.deps.store.put(write, expected);
    const { blob: _sealed, now, recovery: _recovery, ...meta } = write;
    return { meta: { ...meta, version, createdAt, updatedAt: now, failures: 0, failingSince: null, lastAttemptAt: null }, created, recovered };
  }

  /** Opens a stored record; throws CredentialUnreadableError, counted and logged here. */
  async open(stored: Pick<StoredCredential, 'user' | 'provider' | 'version' | 'kekId' | 'blob'>): Promise<Credential> {
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

  /** Seals a credential for its place (also for records that are not credentials: pending revocations). */
  async seal(user: string, providerId: string, credential: Credential): Promise<{ blob: Buffer; kekId: string }> {
    const blob = await this.deps.envelope.seal(encodeCredential(credential), { user, provider: providerId });
    return { blob, kekId: decodeEnvelope(blob).kekId };
  }

  private refreshAtFor(credential: Credential, provider: ProviderConfig): number | null {
    if (credential.type !== 'oauth2' || provider.type !== 'oauth2') return null;
    // An app token renews with the client's own credentials; a user's token needs its refresh token.
    if (credential.refreshToken === null && provider.grant !== 'client_credentials') return null;
    return refreshAt(credential.issuedAt, credential.expiresAt, provider.defaultLifetimeSeconds, this.deps.schedule, this.deps.random);
  }
}
