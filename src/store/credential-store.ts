import type { Redis } from 'ioredis';
import { PreconditionFailedError } from '../errors';
import { dueMember, SHARD_COUNT, type Keys } from './keys';
import { LuaStatus, toStoreError, withStoreErrors } from './redis';

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
}

export class CredentialStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Writes a credential; throws PreconditionFailedError when `expected` does not hold. */
  async put(write: CredentialWrite, expected: ExpectedVersion = ANY_VERSION): Promise<{ version: number; created: boolean; createdAt: number }> {
    const { user, provider } = write;
    const fields: (string | Buffer)[] = ['type', write.type, 'blob', write.blob];
    if (write.expiresAt !== null) fields.push('expires_at', String(write.expiresAt));
    if (write.scope !== null) fields.push('scope', write.scope);
    if (write.accountId !== null) fields.push('account_id', write.accountId);
    const [status, value, createdAt] = await withStoreErrors(() =>
      this.redis.putCredential(
        this.keys.credential(user, provider),
        this.keys.userIndex(user),
        this.keys.due(user),
        this.keys.kekCounts(user),
        this.keys.versions(user),
        this.keys.leases(user),
        this.keys.states(user),
        provider,
        dueMember(user, provider),
        encodeExpected(expected),
        write.refreshAt === null ? '' : String(write.refreshAt),
        String(write.now),
        write.kekId,
        write.state,
        ...fields,
      ),
    );
    if (status === LuaStatus.VersionMismatch) throw versionMismatch(expected, value);
    return { version: status, created: value === 1, createdAt: Number(createdAt) };
  }

  async get(user: string, provider: string): Promise<StoredCredential | null> {
    const hash = await withStoreErrors(() => this.redis.hgetallBuffer(this.keys.credential(user, provider)));
    if (!hash.blob || !hash.version) return null;
    const text = (name: string) => hash[name]?.toString('utf8') ?? null;
    return { ...parseMeta(user, provider, META_FIELDS.map(text)), blob: hash.blob };
  }

  /** Clear metadata of every credential of a user; no decryption. */
  async list(user: string): Promise<CredentialMeta[]> {
    const providers = (await withStoreErrors(() => this.redis.smembers(this.keys.userIndex(user)))).sort();
    const rows = await withStoreErrors(() => Promise.all(providers.map((p) => this.redis.hmget(this.keys.credential(user, p), ...META_FIELDS))));
    return rows.flatMap((row, i) => (row[0] === null ? [] : [parseMeta(user, providers[i] as string, row)]));
  }

  /** Returns the deleted version, or null when there was nothing to delete. */
  async delete(user: string, provider: string, expected: ExpectedVersion = ANY_VERSION): Promise<number | null> {
    const [status, value] = await withStoreErrors(() =>
      this.redis.deleteCredential(
        this.keys.credential(user, provider),
        this.keys.userIndex(user),
        this.keys.due(user),
        this.keys.kekCounts(user),
        this.keys.leases(user),
        this.keys.states(user),
        provider,
        dueMember(user, provider),
        expected.kind === 'exact' ? String(expected.version) : '',
      ),
    );
    if (status === LuaStatus.VersionMismatch) throw versionMismatch(expected, value);
    return status === LuaStatus.Done ? value : null;
  }

  /** Leases up to `limit` due refreshes of one shard for `owner` (scheduler). */
  async claimDue(shard: number, limit: number, leaseMs: number, owner: string): Promise<{ now: number; members: string[] }> {
    const [now, ...members] = await withStoreErrors(() =>
      this.redis.claimDue(this.keys.shardKey(shard, 'due'), this.keys.shardKey(shard, 'leases'), limit, leaseMs, owner),
    );
    return { now: Number(now), members };
  }

  /** claimDue over several shards in one round trip. */
  async claimDueMany(shards: number[], limit: number, leaseMs: number, owner: string): Promise<{ now: number; members: string[] }[]> {
    const pipeline = this.redis.pipeline();
    for (const shard of shards) pipeline.claimDue(this.keys.shardKey(shard, 'due'), this.keys.shardKey(shard, 'leases'), limit, leaseMs, owner);
    const replies = (await withStoreErrors(() => pipeline.exec())) ?? [];
    return replies.map(([err, reply]) => {
      if (err) throw toStoreError(err);
      const [now, ...members] = reply as [number, ...string[]];
      return { now: Number(now), members };
    });
  }

  /** Takes the refresh lease of one credential (on-demand and forced refreshes). */
  async acquireLease(user: string, provider: string, leaseMs: number, owner: string, probeGapMs: number): Promise<LeaseResult> {
    const [status, value] = await withStoreErrors(() =>
      this.redis.acquireLease(
        this.keys.credential(user, provider),
        this.keys.due(user),
        this.keys.leases(user),
        dueMember(user, provider),
        leaseMs,
        owner,
        probeGapMs,
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
  async recordFailure(
    user: string,
    provider: string,
    expectedVersion: number,
    owner: string,
    kind: 'retry' | 'reauth',
    delayMs: number,
    reason: string,
  ): Promise<FailureResult> {
    const [status, failures, failingSince, now, previous] = await withStoreErrors(() =>
      this.redis.recordFailure(
        this.keys.credential(user, provider),
        this.keys.due(user),
        this.keys.leases(user),
        this.keys.states(user),
        dueMember(user, provider),
        String(expectedVersion),
        owner,
        kind,
        Math.max(0, Math.round(delayMs)),
        reason,
      ),
    );
    return { applied: status === LuaStatus.Done, failures, failingSince, now, previousAttemptAt: previous || null };
  }

  /** Overdue refreshes and the oldest one's due time, summed over every shard (metrics). */
  async dueBacklog(): Promise<{ overdue: number; oldestDueAt: number | null; now: number }> {
    const [seconds, micros] = await withStoreErrors(() => this.redis.time());
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const pipeline = this.redis.pipeline();
    for (let shard = 0; shard < SHARD_COUNT; shard++) {
      pipeline.zcount(this.keys.shardKey(shard, 'due'), '-inf', now);
      pipeline.zrange(this.keys.shardKey(shard, 'due'), '0', '0', 'WITHSCORES');
    }
    const replies = (await withStoreErrors(() => pipeline.exec())) ?? [];
    let overdue = 0;
    let oldestDueAt: number | null = null;
    for (let i = 0; i < replies.length; i += 2) {
      overdue += Number(replies[i]?.[1] ?? 0);
      const first = replies[i + 1]?.[1] as string[] | undefined;
      const score = first && first.length === 2 ? Number(first[1]) : null;
      if (score !== null && score <= now && (oldestDueAt === null || score < oldestDueAt)) oldestDueAt = score;
    }
    return { overdue, oldestDueAt, now };
  }

  /** Credentials by state, summed over every shard (metrics). */
  async stateCounts(): Promise<Record<string, number>> {
    const pipeline = this.redis.pipeline();
    for (let shard = 0; shard < SHARD_COUNT; shard++) pipeline.hgetall(this.keys.shardKey(shard, 'states'));
    const replies = (await withStoreErrors(() => pipeline.exec())) ?? [];
    const counts: Record<string, number> = {};
    for (const [, hash] of replies) {
      for (const [state, count] of Object.entries((hash ?? {}) as Record<string, string>)) counts[state] = (counts[state] ?? 0) + Number(count);
    }
    return counts;
  }

  /** Round trip to Redis, for /readyz. */
  async ping(): Promise<void> {
    await withStoreErrors(() => this.redis.ping());
  }

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
