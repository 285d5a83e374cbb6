import type { Logger } from 'pino';
import type { Clock } from '../clock';
import type { ProviderConfig } from '../config/schema';
import type { CredentialService } from '../credentials/credential-service';
import { hooksOf } from '../providers/catalog';
import type { OAuth2Client } from '../providers/oauth2-client';
import { Secret } from '../secret';
import type { ConnectService } from './connect-service';
import type { ConnectSession, ConnectSessions } from './sessions';

export interface DevicePollerDeps {
  sessions: ConnectSessions;
  connect: ConnectService;
  credentials: CredentialService;
  client: OAuth2Client;
  providers: ReadonlyMap<string, ProviderConfig>;
  clock: Clock;
  logger: Logger;
  settings: { pollMs: number; leaseMs: number; batch: number };
}

/** RFC 8628 §3.5: slow_down adds 5 seconds to the interval, for this and every later poll. */
const SLOW_DOWN_SECONDS = 5;

/**
 * Polls the token endpoint for device-flow sessions (RFC 8628 §3.4) on every replica without
 * double work: a session is claimed from the `{connect}:device:due` schedule with a lease, polled
 * once, and put back at its interval (longer after slow_down or Retry-After) until the user
 * approves, denies, or the code expires. A replica that dies mid-poll leaves the session to come
 * due again when its lease ends.
 */
export class DevicePoller {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;

  constructor(private readonly deps: DevicePollerDeps) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One round: claim what is due and poll it. Exposed for tests. */
  async tick(): Promise<number> {
    const { sessions, settings } = this.deps;
    const { now, ids } = await sessions.claimDevicePolls(settings.batch, settings.leaseMs);
    await Promise.all(ids.map((id) => this.poll(id, now)));
    return ids.length;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick()
        .then(() => undefined)
        .catch((err: unknown) => this.deps.logger.error({ err }, 'device flow poll round failed'))
        .finally(() => {
          this.running = null;
          this.schedule();
        });
    }, this.deps.settings.pollMs);
    this.timer.unref();
  }

  private async poll(id: string, redisNow: number): Promise<void> {
    const { sessions, connect, clock, logger } = this.deps;
    const session = await sessions.get(id);
    if (!session || session.status !== 'pending') return sessions.unschedule(id);
    const provider = this.deps.providers.get(session.provider);
    if (!provider || provider.type !== 'oauth2') return this.end(session, { status: 'error', error: 'provider_error' }, 'failed');
    const left = session.expiresAt - clock.now();
    if (left <= 0) return this.end(session, { status: 'expired' }, 'expired');
    const { deviceCode } = await sessions.secrets(id);
    if (!deviceCode) return this.end(session, { status: 'error', error: 'internal' }, 'failed');

    const interval = session.interval ?? 5;
    const again = (seconds: number, nextInterval = interval) => sessions.scheduleDevicePoll(id, redisNow + seconds * 1000, nextInterval, left);
    const result = await this.deps.client.pollDevice(provider, new Secret(deviceCode), hooksOf(provider));
    if (result.outcome === 'ok') {
      const accountId = await connect.accountId(provider, result.tokens, null);
      if (accountId !== null && typeof accountId === 'object') return this.end(session, { status: 'error', error: 'invalid_id_token' }, 'failed');
      const { meta } = await this.deps.credentials.put(connect.actor(session), session.user, session.provider, provider, connect.credentialFrom(provider, result.tokens, accountId));
      return this.end(session, { status: 'connected', accountId, version: meta.version }, 'connected');
    }
    if (result.outcome === 'transient') return again(Math.max(interval, result.retryAfterSeconds ?? 0));
    switch (result.reason) {
      case 'authorization_pending':
        return again(interval);
      case 'slow_down':
        return again(interval + SLOW_DOWN_SECONDS, interval + SLOW_DOWN_SECONDS);
      case 'expired_token':
        return this.end(session, { status: 'expired' }, 'expired');
      case 'access_denied':
        return this.end(session, { status: 'error', error: 'access_denied' }, 'denied');
      default:
        logger.warn({ provider: session.provider, session: id, outcome: result.outcome, reason: result.reason }, 'device flow poll refused');
        return this.end(session, { status: 'error', error: result.outcome === 'invalid_grant' ? 'invalid_grant' : 'provider_error' }, 'failed');
    }
  }

  private async end(
    session: ConnectSession,
    outcome: { status: 'connected' | 'error' | 'expired'; error?: string; accountId?: string | null; version?: number },
    counted: 'connected' | 'denied' | 'failed' | 'expired',
  ): Promise<void> {
    await this.deps.sessions.finish(session.id, outcome);
    this.deps.connect.count(session, counted);
  }
}
