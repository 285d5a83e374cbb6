import { Cluster } from 'ioredis';
import { PreconditionFailedError } from '../errors';
import { dueMember, revocationMember, SHARD_COUNT, type Keys } from './keys';
import { LuaStatus, toStoreError, withStoreErrors, type RedisClient } from './redis';
import { masterFor, mastersOf } from './topology';

/**
 * The credential record, a Redis HASH at keys.credential(user, provider):
 *
 *   version     record version issued by the shard's counter: the compare-and-set token
 *   kek         id of the KEK the record's data key is wrapped under (kept counts per shard)
 *   type        oauth1 | oauth2
 *   state       active | reauth_required
 *   expires_at  ms since the epoch; absent when the provider gave no expiry
 *   refresh_at  ms since the epoch when the scheduler should refresh it; absent when nothing will
 *   scope       granted scope (OAuth 2.0), absent when unknown
 *   account_id  the provider's id for the user, absent when unknown
 *   created_at, updated_at   ms since the epoch
 *   failures, failing_since, attempted_at, last_error   while refreshes fail: how many in a row,
 *               since when, the last attempt (ms) and a short reason; gone after a success
 *   blob        the sealed credential (crypto/envelope.ts); the only field with token material
 *
 * The clear fields exist so lists, counts and schedules never decrypt. What decides what a
 * caller receives (type, expiry, tokens) is read from inside the sealed blob.
 */
export type CredentialType = 'oauth1' | 'oauth2';
export type CredentialState = 'active' | 'reauth_required';

export interface CredentialMeta {
  user: string;
  provider: string;
  version: number;
  type: CredentialType;
  state: CredentialState;
  kekId: string;
  expiresAt: number | null;
  refreshAt: number | null;
  scope: string | null;
  accountId: string | null;
  createdAt: number;
  updatedAt: number;
  /** Refresh attempts that failed in a row (0 when the last one succeeded). */
  failures: number;
  failingSince: number | null;
  /** When the last failed attempt was made (ms); null when not failing. */
  lastAttemptAt: number | null;
}

export interface StoredCredential extends CredentialMeta {
  blob: Buffer;
}

export interface CredentialWrite {
  user: string;
  provider: string;
  type: CredentialType;
  state: CredentialState;
  kekId: string;
  blob: Buffer;
  expiresAt: number | null;
  refreshAt: number | null;
  scope: string | null;
  accountId: string | null;
  now: number;
  /**
   * Set when a refresh writes: the id of the token.refresh_recovered event the write emits if it
   * ends a failing streak that lasted `failedAfterMs` (and so was announced).
   */
  recovery?: { eventId: string; failedAfterMs: number };
}

/** A delete that tells others: the event it emits and, when the provider must be told, the revocation it queues. */
export interface DeleteOptions {
  event?: { id: string; at: number; reason: 'deleted' | 'provider_webhook'; by: string };
  /** Queue an upstream revocation, leased to the caller for this long (ms). Needs an exact expected version. */
  revokeLeaseMs?: number;
}

/** A deleted credential waiting to be revoked upstream. */
export interface PendingRevocation {
  user: string;
  provider: string;
  version: number;
  kekId: string;
  blob: Buffer;
  attempts: number;
  queuedAt: number;
}

/** If-Match semantics: any version, the record must exist, must not exist, or an exact version. */
export type ExpectedVersion = { kind: 'any' } | { kind: 'exists' } | { kind: 'absent' } | { kind: 'exact'; version: number };
export const ANY_VERSION: ExpectedVersion = { kind: 'any' };

const META_FIELDS = [
  'version',
  'kek',
  'type',
  'state',
  'expires_at',
  'refresh_at',
  'scope',
  'account_id',
  'created_at',
  'updated_at',
  'failures',
  'failing_since',
  'attempted_at',
] as const;

export type LeaseResult =
  | { status: 'acquired'; now: number }
  | { status: 'held'; retryInMs: number }
  | { status: 'too_soon'; retryInMs: number }
  | { status: 'absent' };

export interface FailureResult {
  applied: boolean;
  failures: number;
  failingSince: number;
  now: number;
  previousAttemptAt: number | null;
  /** The event written with the failure, if any. */
  event: 'token.refresh_failed' | 'token.reauth_required' | null;
}

export class CredentialStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  /** Writes a credential; throws PreconditionFailedError when `expected` does not hold. */
  async put(write: CredentialWrite, expected: ExpectedVersion = ANY_VERSION): Promise<{ version: number; created: boolean; createdAt: number; recovered: boolean }> {
    const { user, provider } = write;
    const fields: (string | Buffer)[] = ['type', write.type, 'blob', write.blob];
    if (write.expiresAt !== null) fields.push('expires_at', String(write.expiresAt));
    if (write.scope !== null) fields.push('scope', write.scope);
    if (write.accountId !== null) fields.push('account_id', write.accountId);
    const [status, value, createdAt, recovered] = await withStoreErrors(() =>
      this.redis.putCredential(
        this.keys.credential(user, provider),
        this.keys.userIndex(user),
        this.keys.due(user),
        this.keys.kekCounts(user),
        this.keys.versions(user),
        this.keys.leases(user),
        this.keys.states(user),
        this.keys.outbox(user),
        provider,
        dueMember(user, provider),
        encodeExpected(expected),
        write.refreshAt === null ? '' : String(write.refreshAt),
        String(write.now),
        write.kekId,
        write.state,
        write.recovery?.eventId ?? '',
        write.recovery?.failedAfterMs ?? 0,
        user,
        ...fields,
      ),
    );
    if (status === LuaStatus.VersionMismatch) throw versionMismatch(expected, value);
    return { version: status, created: value === 1, createdAt: Number(createdAt), recovered: recovered === 1 };
  }

  async get(user: string, provider: string): Promise<StoredCredential | null> {
    const hash = await withStoreErrors(() => this.redis.hgetallBuffer(this.keys.credential(user, provider)));
    if (!hash.blob || !hash.version) return null;
    const text = (name: string) => hash[name]?.toString('utf8') ?? null;
    // The blob is added to the parsed metadata, not spread with it: this runs on every GET, and a
    // spread copies property by property on a slow path.
    const stored = parseMeta(user, provider, META_FIELDS.map(text)) as StoredCredential;
    stored.blob = hash.blob;
    return stored;
  }

  /** Clear metadata of one credential; no decryption. */
  async meta(user: string, provider: string): Promise<CredentialMeta | null> {
    const row = await withStoreErrors(() => this.redis.hmget(this.keys.credential(user, provider), ...META_FIELDS));
    return row[0] === null ? null : parseMeta(user, provider, row);
  }

  /**
   * The account index: provider account id -> users whose credential carried it (inbound
   * revocation webhooks name accounts, not users). Written before the credential, removed after
   * it, so it may name users who no longer match (callers re-check the record) but never misses one.
   */
  async indexAccount(provider: string, accountId: string, user: string): Promise<void> {
    await withStoreErrors(() => this.redis.sadd(this.keys.accountIndex(provider, accountId), user));
  }

  async unindexAccount(provider: string, accountId: string, user: string): Promise<void> {
    await withStoreErrors(() => this.redis.srem(this.keys.accountIndex(provider, accountId), user));
  }

  async usersOfAccount(provider: string, accountId: string): Promise<string[]> {
    return withStoreErrors(() => this.redis.smembers(this.keys.accountIndex(provider, accountId)));
  }

  /** Clear metadata of every credential of a user; no decryption. */
  async list(user: string): Promise<CredentialMeta[]> {
    const providers = (await withStoreErrors(() => this.redis.smembers(this.keys.userIndex(user)))).sort();
    const rows = await withStoreErrors(() => Promise.all(providers.map((p) => this.redis.hmget(this.keys.credential(user, p), ...META_FIELDS))));
    return rows.flatMap((row, i) => (row[0] === null ? [] : [parseMeta(user, providers[i] as string, row)]));
  }

  /**
   * Returns the deleted version, or null when there was nothing to delete. With
   * `revokeLeaseMs` the record is queued for upstream revocation instead of dropped.
   */
  async delete(user: string, provider: string, expected: ExpectedVersion = ANY_VERSION, options: DeleteOptions = {}): Promise<number | null> {
    const version = expected.kind === 'exact' ? expected.version : null;
    const revoke = options.revokeLeaseMs !== undefined && version !== null;
    const { event } = options;
    const [status, value] = await withStoreErrors(() =>
      this.redis.deleteCredential(
        this.keys.credential(user, provider),
        this.keys.userIndex(user),
        this.keys.due(user),
        this.keys.kekCounts(user),
        this.keys.leases(user),
        this.keys.states(user),
        this.keys.revocations(user),
        // Declared even when unused, so the script's keys are the same on every call.
        this.keys.revocation(user, provider, version ?? 0),
        this.keys.outbox(user),
        provider,
        dueMember(user, provider),
        version === null ? '' : String(version),
        revoke ? revocationMember(user, provider, version) : '',
        options.revokeLeaseMs ?? 0,
        event?.id ?? '',
        event?.at ?? 0,
        user,
        event?.reason ?? '',
        event?.by ?? '',
      ),
    );
    if (status === LuaStatus.VersionMismatch) throw versionMismatch(expected, value);
    return status === LuaStatus.Done ? value : null;
  }

  /**
   * One Redis claims all of a round's shards in one claim-due call, bounded in total; a Redis
   * Cluster claims shard by shard (a script's keys must share a slot), in parallel, so a round
   * there should span about as many shards as entries are wanted.
   */
  get claimsAcrossShards(): boolean {
    return !(this.redis instanceof Cluster);
  }

  /**
   * Leases up to `limit` due refreshes and `limit` due upstream revocations from `shards` for
   * `owner` (scheduler): in all on one Redis; on a cluster, `limit` spread evenly over the shards.
   * A shard whose claim failed (its cluster node is down) is reported in `failures` while the
   * others' claims are handed out; only when every claim failed does it throw.
   */
  async claimDueMany(
    shards: number[],
    limit: number,
    leaseMs: number,
    owner: string,
  ): Promise<{ claims: { now: number; members: string[]; revocations: string[] }[]; failures: Error[] }> {
    const calls = this.claimsAcrossShards ? [{ shards, limit }] : shards.map((shard) => ({ shards: [shard], limit: Math.ceil(limit / shards.length) }));
    const settled = await Promise.allSettled(
      calls.map((call) => {
        const keys = call.shards.flatMap((shard) => [this.keys.shardKey(shard, 'due'), this.keys.shardKey(shard, 'leases'), this.keys.shardKey(shard, 'revocations')]);
        return this.redis.claimDue(keys.length, ...keys, call.limit, leaseMs, owner);
      }),
    );
    const claims: { now: number; members: string[]; revocations: string[] }[] = [];
    const failures: Error[] = [];
    for (const result of settled) {
      if (result.status === 'rejected') {
        failures.push(toStoreError(result.reason));
        continue;
      }
      const [now, ...rest] = result.value;
      for (let at = 0; at < rest.length; ) {
        const refreshes = Number(rest[at]);
        const revocations = Number(rest[at + 1]);
        at += 2;
        const members = rest.slice(at, at + refreshes) as string[];
        at += refreshes;
        claims.push({ now: Number(now), members, revocations: rest.slice(at, at + revocations) as string[] });
        at += revocations;
      }
    }
    if (claims.length === 0 && failures.length > 0) throw failures[0];
    return { claims, failures };
  }

  /** A deleted credential queued for upstream revocation, or null when it is gone. */
  async getRevocation(user: string, provider: string, version: number): Promise<PendingRevocation | null> {
    const [kek, blob, attempts, queuedAt] = await withStoreErrors(() =>
      this.redis.hmgetBuffer(this.keys.revocation(user, provider, version), 'kek', 'blob', 'attempts', 'queued_at'),
    );
    if (!kek || !blob) return null;
    return { user, provider, version, kekId: kek.toString(), blob, attempts: Number(attempts ?? 0), queuedAt: Number(queuedAt ?? 0) };
  }

  /**
   * Queues sealed tokens that belong to no credential (a refresh minted them for a credential
   * deleted meanwhile) for upstream revocation, leased to the caller for `leaseMs`.
   * Returns the version that names the queue entry.
   */
  async queueRevocation(user: string, provider: string, sealed: { kekId: string; blob: Buffer }, leaseMs: number): Promise<number> {
    // A version from the shard's counter: never reused, so it cannot collide with a deleted record's.
    const version = await withStoreErrors(() => this.redis.incr(this.keys.versions(user)));
    const now = await this.redisNow(this.keys.revocations(user));
    const leaseUntil = now + leaseMs;
    const record = this.keys.revocation(user, provider, version);
    await withStoreErrors(() =>
      this.redis
        .multi()
        .hset(record, 'version', version, 'kek', sealed.kekId, 'type', 'oauth2', 'blob', sealed.blob, 'queued_at', now, 'attempts', 0)
        .hincrby(this.keys.kekCounts(user), sealed.kekId, 1)
        .zadd(this.keys.revocations(user), leaseUntil, revocationMember(user, provider, version))
        .exec(),
    );
    return version;
  }

  /** The revocation failed for now: try again after `delayMs` (only while it is still queued). */
  async retryRevocation(user: string, provider: string, version: number, delayMs: number, reason: string): Promise<void> {
    const at = (await this.redisNow(this.keys.revocations(user))) + Math.max(0, Math.round(delayMs));
    await withStoreErrors(() =>
      this.redis
        .multi()
        .hincrby(this.keys.revocation(user, provider, version), 'attempts', 1)
        .hset(this.keys.revocation(user, provider, version), 'last_error', reason)
        .zadd(this.keys.revocations(user), 'XX', at, revocationMember(user, provider, version))
        .exec(),
    );
  }

  /** The provider has been told, or never will be: drop the sealed record. */
  async finishRevocation(user: string, provider: string, version: number): Promise<boolean> {
    const dropped = await withStoreErrors(() =>
      this.redis.finishRevocation(
        this.keys.revocation(user, provider, version),
        this.keys.revocations(user),
        this.keys.kekCounts(user),
        revocationMember(user, provider, version),
      ),
    );
    return dropped === 1;
  }

  /** Upstream revocations waiting, summed over every shard (metrics). */
  async revocationBacklog(): Promise<number> {
    const counts = await withStoreErrors(() => Promise.all(everyShard((shard) => this.redis.zcard(this.keys.shardKey(shard, 'revocations')))));
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /** After a failed app-token mint: no replica tries again for `ms` (there is no record to keep the failure on). */
  async backOffMint(user: string, provider: string, ms: number): Promise<void> {
    await withStoreErrors(() => this.redis.set(this.keys.mintBackoff(user, provider), '1', 'PX', Math.max(1, ms)));
  }

  /** How long minting this app token still backs off (ms; 0: not at all). */
  async mintBackoffMs(user: string, provider: string): Promise<number> {
    return Math.max(0, await withStoreErrors(() => this.redis.pttl(this.keys.mintBackoff(user, provider))));
  }

  /**
   * Takes the refresh lease of one credential (on-demand and forced refreshes); with
   * `orAbsent`, also of one that does not exist yet (an app token about to be minted).
   */
  async acquireLease(user: string, provider: string, leaseMs: number, owner: string, probeGapMs: number, orAbsent = false): Promise<LeaseResult> {
    const [status, value] = await withStoreErrors(() =>
      this.redis.acquireLease(
        this.keys.credential(user, provider),
        this.keys.due(user),
        this.keys.leases(user),
        dueMember(user, provider),
        leaseMs,
        owner,
        probeGapMs,
        orAbsent ? '1' : '',
      ),
    );
    if (status === LuaStatus.Done) return { status: 'acquired', now: value };
    if (status === LuaStatus.TooSoon) return { status: 'too_soon', retryInMs: value };
    if (status === LuaStatus.NoCredential) return { status: 'absent' };
    return { status: 'held', retryInMs: value };
  }

  async leaseHeld(user: string, provider: string, owner: string): Promise<boolean> {
    return (await withStoreErrors(() => this.redis.leaseHeld(this.keys.leases(user), dueMember(user, provider), owner))) === 1;
  }

  /** Gives the lease back without a write; the schedule returns to the record's refresh_at. */
  async releaseLease(user: string, provider: string, owner: string): Promise<boolean> {
    const released = await withStoreErrors(() =>
      this.redis.releaseLease(this.keys.credential(user, provider), this.keys.due(user), this.keys.leases(user), dueMember(user, provider), owner),
    );
    return released === 1;
  }

  /** Records a failed refresh: retry after `delayMs`, or reauth (the credential is dead). */
  /**
   * Records a failed refresh: retry after `delayMs`, or reauth (the credential is dead). The
   * event it causes (reauth_required, or refresh_failed once failing for `failedAfterMs`) is
   * written with it under `eventId`.
   */
  async recordFailure(
    user: string,
    provider: string,
    expectedVersion: number,
    owner: string,
    failure: { kind: 'retry' | 'reauth'; delayMs: number; reason: string; eventId: string; failedAfterMs: number },
  ): Promise<FailureResult> {
    const [status, failures, failingSince, now, previous, event] = await withStoreErrors(() =>
      this.redis.recordFailure(
        this.keys.credential(user, provider),
        this.keys.due(user),
        this.keys.leases(user),
        this.keys.states(user),
        this.keys.outbox(user),
        dueMember(user, provider),
        String(expectedVersion),
        owner,
        failure.kind,
        Math.max(0, Math.round(failure.delayMs)),
        failure.reason,
        failure.eventId,
        Math.max(0, Math.round(failure.failedAfterMs)),
        user,
        provider,
      ),
    );
    return {
      applied: status === LuaStatus.Done,
      failures,
      failingSince,
      now,
      previousAttemptAt: previous || null,
      event: event === 1 ? 'token.refresh_failed' : event === 2 ? 'token.reauth_required' : null,
    };
  }

  /** Overdue refreshes and the oldest one's due time, summed over every shard (metrics). */
  async dueBacklog(): Promise<{ overdue: number; oldestDueAt: number | null; now: number }> {
    // One clock for the whole sum: on a cluster the masters' clocks may differ a little, which a metric can bear.
    const now = await this.redisNow(this.keys.shardKey(0, 'due'));
    const replies = await withStoreErrors(() =>
      Promise.all(
        everyShard((shard) =>
          Promise.all([this.redis.zcount(this.keys.shardKey(shard, 'due'), '-inf', now), this.redis.zrange(this.keys.shardKey(shard, 'due'), '0', '0', 'WITHSCORES')]),
        ),
      ),
    );
    let overdue = 0;
    let oldestDueAt: number | null = null;
    for (const [count, first] of replies) {
      overdue += count;
      const score = first.length === 2 ? Number(first[1]) : null;
      if (score !== null && score <= now && (oldestDueAt === null || score < oldestDueAt)) oldestDueAt = score;
    }
    return { overdue, oldestDueAt, now };
  }

  /** Credentials by state, summed over every shard (metrics). */
  async stateCounts(): Promise<Record<string, number>> {
    const hashes = await withStoreErrors(() => Promise.all(everyShard((shard) => this.redis.hgetall(this.keys.shardKey(shard, 'states')))));
    const counts: Record<string, number> = {};
    for (const hash of hashes) {
      for (const [state, count] of Object.entries(hash)) counts[state] = (counts[state] ?? 0) + Number(count);
    }
    return counts;
  }

  /**
   * Waits until `replicas` replicas acknowledged this connection's writes to the master holding
   * the user's shard (a rotated refresh token, DESIGN §7), at most `timeoutMs`; returns how many
   * did. WAIT has no key: on a cluster it must reach that master, not any node.
   */
  async waitForReplicas(user: string, replicas: number, timeoutMs: number): Promise<number> {
    return withStoreErrors(async () => masterFor(this.redis, this.keys.versions(user)).wait(replicas, timeoutMs));
  }

  /**
   * Redis TIME in ms: the clock every replica shares for schedules and leases. Taken from the
   * master holding `key`, whose scripts will compare against it (a cluster's masters each have
   * their own clock).
   */
  private async redisNow(key: string): Promise<number> {
    const [seconds, micros] = await withStoreErrors(() => this.redis.timeAt(key));
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  /** Round trip to every Redis master, for /readyz: the vault needs all of its shards. */
  async ping(): Promise<void> {
    await withStoreErrors(async () => {
      const masters = mastersOf(this.redis);
      if (masters.length === 0) throw new Error('no Redis Cluster master is known yet');
      await Promise.all(masters.map((master) => master.ping()));
    });
  }

}

/** One command per shard, all sent at once: pipelined per Redis node (store/redis.ts). */
function everyShard<T>(command: (shard: number) => Promise<T>): Promise<T>[] {
  return Array.from({ length: SHARD_COUNT }, (_, shard) => command(shard));
}

function encodeExpected(expected: ExpectedVersion): string {
  switch (expected.kind) {
    case 'any':
      return '';
    case 'exists':
      return '*';
    case 'absent':
      return '!';
    case 'exact':
      return String(expected.version);
  }
}

function versionMismatch(expected: ExpectedVersion, current: number): PreconditionFailedError {
  if (expected.kind === 'absent') return new PreconditionFailedError(`the credential already exists (version ${current})`);
  if (current === 0) return new PreconditionFailedError('the credential does not exist');
  return new PreconditionFailedError(`the credential is at version ${current}`);
}

function parseMeta(user: string, provider: string, row: (string | null)[]): CredentialMeta {
  const [version, kek, type, state, expiresAt, refreshAt, scope, accountId, createdAt, updatedAt, failures, failingSince, attemptedAt] = row;
  const number = (value: string | null | undefined) => (value === null || value === undefined ? null : Number(value));
  return {
    user,
    provider,
    version: Number(version),
    kekId: kek ?? '',
    type: type === 'oauth1' ? 'oauth1' : 'oauth2',
    state: state === 'reauth_required' ? 'reauth_required' : 'active',
    expiresAt: number(expiresAt),
    refreshAt: number(refreshAt),
    scope: scope ?? null,
    accountId: accountId ?? null,
    createdAt: number(createdAt) ?? 0,
    updatedAt: number(updatedAt) ?? 0,
    failures: number(failures) ?? 0,
    failingSince: number(failingSince),
    lastAttemptAt: number(attemptedAt),
  };
}
