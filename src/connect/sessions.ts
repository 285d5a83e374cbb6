import type { Envelope } from '../crypto/envelope';
import type { Keys } from '../store/keys';
import { withStoreErrors, type RedisClient } from '../store/redis';

export type ConnectFlow = 'authorization_code' | 'oauth1' | 'device';

/**
 * pending    created; for a browser flow, its start URL not opened yet
 * started    the browser was bound and sent to the provider (browser flows)
 * connected  the credential is stored
 * error      the provider or the user said no, or the exchange failed (`error` says which)
 * expired    the device code expired before the user approved
 */
export type ConnectStatus = 'pending' | 'started' | 'connected' | 'error' | 'expired';

/** What a flow must keep secret while the user is away: sealed in Redis like a credential. */
export interface ConnectSecrets {
  /** The provider URL the start page redirects to; it carries the state. */
  authorizeUrl?: string;
  codeVerifier?: string;
  nonce?: string;
  /** OAuth 1.0a temporary credentials. */
  requestToken?: string;
  requestTokenSecret?: string;
  deviceCode?: string;
}

/** A connect flow in progress, as kept in Redis (clear fields; the secrets are sealed apart). */
export interface ConnectSession {
  id: string;
  provider: string;
  user: string;
  /** The caller that started it: only it may read the session. */
  caller: string;
  flow: ConnectFlow;
  status: ConnectStatus;
  /** An OAuth error code or one of the vault's (provider_error, provider_unavailable, ...). */
  error: string | null;
  returnTo: string | null;
  createdAt: number;
  expiresAt: number;
  /** SHA-256 (hex) of the state's secret part, and of the browser binding cookie once bound. */
  stateHash: string | null;
  bindingHash: string | null;
  userCode: string | null;
  verificationUri: string | null;
  verificationUriComplete: string | null;
  /** Seconds between device-flow polls (grows with slow_down). */
  interval: number | null;
  accountId: string | null;
  /** Version of the stored credential, once connected. */
  version: number | null;
}

type NewSession = Omit<ConnectSession, 'status' | 'error' | 'bindingHash' | 'accountId' | 'version'>;

/** How long a finished session stays readable (GET /connect/sessions/:id). */
export const FINISHED_TTL_MS = 10 * 60_000;

const FIELDS = {
  provider: 'provider',
  user: 'user',
  caller: 'caller',
  flow: 'flow',
  status: 'status',
  error: 'error',
  returnTo: 'return_to',
  createdAt: 'created_at',
  expiresAt: 'expires_at',
  stateHash: 'state',
  bindingHash: 'binding',
  userCode: 'user_code',
  verificationUri: 'verification_uri',
  verificationUriComplete: 'verification_uri_complete',
  interval: 'interval',
  accountId: 'account_id',
  version: 'version',
} as const;

/**
 * Connect sessions in Redis: one HASH per flow (`{connect}:session:<id>`) that expires with the
 * flow, the secrets sealed with the keyring (AAD binds them to the session id), and the device
 * flow's poll schedule (`{connect}:device:due`). Single use is HSETNX on the `used` field: only
 * one callback, from one browser, finishes a flow.
 */
export class ConnectSessions {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly envelope: Envelope,
  ) {}

  /** Stores a new flow; a device flow is also scheduled for its first poll `firstPollInMs` from now (Redis time). */
  async create(session: NewSession, secrets: ConnectSecrets, firstPollInMs?: number): Promise<void> {
    const blob = await this.envelope.seal(Buffer.from(JSON.stringify(secrets)), aad(session.id));
    const fields: Record<string, string | Buffer> = { blob, [FIELDS.status]: 'pending' };
    for (const [name, field] of Object.entries(FIELDS)) {
      const value = (session as unknown as Record<string, unknown>)[name];
      if (value !== null && value !== undefined) fields[field] = String(value);
    }
    const key = this.keys.connectSession(session.id);
    // Relative: the vault's clock and Redis's may disagree.
    const multi = this.redis.multi().hset(key, fields).pexpire(key, session.expiresAt - session.createdAt + FINISHED_TTL_MS);
    if (firstPollInMs !== undefined) {
      // The clock of the master holding the poll schedule, which claim-device-polls compares against.
      const [seconds, micros] = await withStoreErrors(() => this.redis.timeAt(this.keys.devicePolls()));
      multi.zadd(this.keys.devicePolls(), Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) + firstPollInMs, session.id);
    }
    await withStoreErrors(() => multi.exec());
  }

  async get(id: string): Promise<ConnectSession | null> {
    const hash = await withStoreErrors(() => this.redis.hgetall(this.keys.connectSession(id)));
    if (!hash.status) return null;
    const text = (field: string) => hash[field] ?? null;
    const number = (field: string) => (hash[field] === undefined ? null : Number(hash[field]));
    return {
      id,
      provider: hash.provider!,
      user: hash.user!,
      caller: hash.caller!,
      flow: hash.flow as ConnectFlow,
      status: hash.status as ConnectStatus,
      error: text(FIELDS.error),
      returnTo: text(FIELDS.returnTo),
      createdAt: Number(hash.created_at),
      expiresAt: Number(hash.expires_at),
      stateHash: text(FIELDS.stateHash),
      bindingHash: text(FIELDS.bindingHash),
      userCode: text(FIELDS.userCode),
      verificationUri: text(FIELDS.verificationUri),
      verificationUriComplete: text(FIELDS.verificationUriComplete),
      interval: number(FIELDS.interval),
      accountId: text(FIELDS.accountId),
      version: number(FIELDS.version),
    };
  }

  /** The sealed secrets; throws CredentialUnreadableError like a credential would. */
  async secrets(id: string): Promise<ConnectSecrets> {
    const blob = await withStoreErrors(() => this.redis.hgetBuffer(this.keys.connectSession(id), 'blob'));
    if (!blob) return {};
    return JSON.parse((await this.envelope.open(blob, aad(id))).toString('utf8')) as ConnectSecrets;
  }

  /**
   * Binds the session to a browser: null when this call bound it, else the binding already there
   * (another browser's, or this one's on a reload), or 'gone' when the session expired meanwhile.
   */
  async bind(id: string, bindingHash: string): Promise<string | null | 'gone'> {
    const key = this.keys.connectSession(id);
    const [[, exists], [, set], [, current]] = (await withStoreErrors(() =>
      this.redis.multi().exists(key).hsetnx(key, FIELDS.bindingHash, bindingHash).hget(key, FIELDS.bindingHash).exec(),
    )) as [[null, number], [null, number], [null, string | null]];
    if (exists === 0) {
      // HSETNX created a stray hash: remove it rather than leave a session without an expiry.
      await withStoreErrors(() => this.redis.del(key));
      return 'gone';
    }
    if (set === 1) await withStoreErrors(() => this.redis.hset(key, FIELDS.status, 'started'));
    return set === 1 ? null : current;
  }

  /** Takes the session's one use; false when it was used already (or is gone). */
  async claim(id: string): Promise<boolean> {
    const key = this.keys.connectSession(id);
    const [[, exists], [, set]] = (await withStoreErrors(() => this.redis.multi().exists(key).hsetnx(key, 'used', '1').exec())) as [[null, number], [null, number]];
    if (exists === 0) {
      // HSETNX created a stray hash: remove it rather than leave a session without an expiry.
      await withStoreErrors(() => this.redis.del(key));
      return false;
    }
    return set === 1;
  }

  /** Records how the flow ended; the session stays readable for a while, then expires. */
  async finish(id: string, outcome: { status: 'connected' | 'error' | 'expired'; error?: string; accountId?: string | null; version?: number }): Promise<void> {
    const key = this.keys.connectSession(id);
    const fields: Record<string, string> = { [FIELDS.status]: outcome.status };
    if (outcome.error !== undefined) fields[FIELDS.error] = outcome.error;
    if (outcome.accountId) fields[FIELDS.accountId] = outcome.accountId;
    if (outcome.version !== undefined) fields[FIELDS.version] = String(outcome.version);
    await withStoreErrors(() =>
      this.redis
        .multi()
        .hset(key, fields)
        .hdel(key, 'blob')
        .pexpire(key, FINISHED_TTL_MS)
        .zrem(this.keys.devicePolls(), id)
        .exec(),
    );
  }

  /** Device flow: the sessions due for a poll, leased for `leaseMs`; `now` is Redis time. */
  async claimDevicePolls(max: number, leaseMs: number): Promise<{ now: number; ids: string[] }> {
    const [now, ...ids] = await withStoreErrors(() => this.redis.claimDevicePolls(this.keys.devicePolls(), max, leaseMs));
    return { now, ids };
  }

  /** The next poll of a session still in the schedule (a finished one is not put back); `ttlMs`: how long the session has left. */
  async scheduleDevicePoll(id: string, at: number, interval: number, ttlMs: number): Promise<void> {
    const key = this.keys.connectSession(id);
    await withStoreErrors(() =>
      this.redis
        .multi()
        .zadd(this.keys.devicePolls(), 'XX', at, id)
        .hset(key, FIELDS.interval, String(interval))
        // Had the session expired meanwhile, HSET made a new hash: it gets an end too.
        .pexpire(key, Math.max(1000, ttlMs + FINISHED_TTL_MS))
        .exec(),
    );
  }

  /** A scheduled session whose record is gone (expired): dropped from the schedule. */
  async unschedule(id: string): Promise<void> {
    await withStoreErrors(() => this.redis.zrem(this.keys.devicePolls(), id));
  }
}

function aad(id: string) {
  return { user: '_connect', provider: id };
}
