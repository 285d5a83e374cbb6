import { crc32 } from 'node:zlib';

/**
 * Every Redis key name is built here and nowhere else.
 *
 * Each user maps to one of 1,024 logical shards, shard = crc32(user) mod 1024, fixed forever
 * (changing it is a data migration). Every key about a user carries `{s<n>}` as its hash tag, so
 * one Lua script can change the record, its schedule and its counters atomically on a single
 * Redis and on Redis Cluster alike:
 *
 *   <prefix>{s<n>}:cred:<user>:<provider>   HASH  sealed blob + clear metadata (see credential-store.ts)
 *   <prefix>{s<n>}:user:<user>              SET   the user's provider ids
 *   <prefix>{s<n>}:due                      ZSET  "<user>:<provider>" scored by refresh_at (ms)
 *   <prefix>{s<n>}:kek                      HASH  KEK id -> records in this shard sealed under it
 *   <prefix>{s<n>}:seq                      STRING counter issuing record versions (never reused)
 *   <prefix>{s<n>}:leases                   HASH  "<user>:<provider>" -> "<owner>|<deadline ms>" of refreshes in flight
 *   <prefix>{s<n>}:states                   HASH  state -> credentials of this shard in that state
 *   <prefix>{s<n>}:outbox                   LIST  events (webhooks/outbound/outbox.ts) pushed by the script that made the change
 *   <prefix>{s<n>}:revocations              ZSET  "<version>:<user>:<provider>" of deleted credentials still to be revoked
 *                                                 upstream (RFC 7009), scored by the next attempt (ms) or lease deadline
 *   <prefix>{s<n>}:revoke:<version>:<user>:<provider>   HASH  the deleted record itself (renamed), kept sealed until
 *                                                 the provider has been told; still counted under its KEK
 *
 * Keys about the keyring, shared by every replica, live under their own tag:
 *
 *   <prefix>{keys}:active                   STRING the KEK id every replica seals with
 *   <prefix>{keys}:replicas                 HASH  replica id -> heartbeat JSON (key ids held, when)
 *   <prefix>{keys}:replaced                 SET   KEK ids that were active and have been replaced
 *   <prefix>{jobs}:rewrap:current           STRING id of the rewrap job running (one at a time)
 *   <prefix>{jobs}:rewrap:<id>              HASH  a rewrap job: state, target key, counts, cursor (on a Redis Cluster
 *                                                 one per master, store/topology.ts walkStep), owner lease
 *   <prefix>{keys}:outbox, {jobs}:outbox    LIST  events of key activation and rewrap jobs, written with them
 *
 * Keys about other things have their own tags, are written separately from the records, and
 * anything read through them is re-checked against the record:
 *
 *   <prefix>{a<n>}:acct:<provider>:<account id>  SET  users whose credential carried this provider account id
 *                                                 (n = crc32(provider:account id) mod 1024); may hold stale users
 *   <prefix>{webhooks}:delivery:<id>        HASH  one outbound webhook delivery: subscriber, body, status, attempts
 *   <prefix>{webhooks}:pending              ZSET  delivery ids scored by next attempt (ms) or lease deadline
 *   <prefix>{webhooks}:leases               HASH  delivery id -> owner of the attempt in flight
 *   <prefix>{webhooks}:failed               ZSET  dead letters, scored by when they failed
 *   <prefix>{webhooks}:delivered            ZSET  recent successes, scored by delivery time (kept a day)
 *   <prefix>{webhooks}:seen:<provider>:<id> STRING an inbound webhook delivery already handled (replay guard, TTL)
 *
 * Members "<user>:<provider>" split on the last ':' because provider ids contain none.
 */
export const SHARD_COUNT = 1024;

export function shardOf(user: string): number {
  return crc32(user) % SHARD_COUNT;
}

export class Keys {
  constructor(readonly prefix: string) {}

  private shard(user: string): string {
    return `${this.prefix}{s${shardOf(user)}}:`;
  }

  credential(user: string, provider: string): string {
    return `${this.shard(user)}cred:${user}:${provider}`;
  }

  userIndex(user: string): string {
    return `${this.shard(user)}user:${user}`;
  }

  due(user: string): string {
    return `${this.shard(user)}due`;
  }

  /** STRING that exists (with a TTL) while minting an app token is backing off after a failure. */
  mintBackoff(user: string, provider: string): string {
    return `${this.shard(user)}mint-backoff:${provider}`;
  }

  kekCounts(user: string): string {
    return `${this.shard(user)}kek`;
  }

  versions(user: string): string {
    return `${this.shard(user)}seq`;
  }

  outbox(user: string): string {
    return `${this.shard(user)}outbox`;
  }

  revocations(user: string): string {
    return `${this.shard(user)}revocations`;
  }

  /** The record of a deleted credential waiting for upstream revocation. */
  revocation(user: string, provider: string, version: number): string {
    return `${this.shard(user)}revoke:${revocationMember(user, provider, version)}`;
  }

  leases(user: string): string {
    return `${this.shard(user)}leases`;
  }

  states(user: string): string {
    return `${this.shard(user)}states`;
  }

  /** Outbox of events that are about no user: key activation, rewrap jobs. */
  globalOutbox(tag: 'keys' | 'jobs'): string {
    return `${this.prefix}{${tag}}:outbox`;
  }

  /** Every outbox: one per shard, then the global ones. */
  allOutboxes(): string[] {
    const shards = Array.from({ length: SHARD_COUNT }, (_, shard) => this.shardKey(shard, 'outbox'));
    return [...shards, this.globalOutbox('keys'), this.globalOutbox('jobs')];
  }

  accountIndex(provider: string, accountId: string): string {
    return `${this.prefix}{a${crc32(`${provider}:${accountId}`) % SHARD_COUNT}}:acct:${provider}:${accountId}`;
  }

  delivery(id: string): string {
    return `${this.prefix}{webhooks}:delivery:${id}`;
  }

  deliveries(status: 'pending' | 'failed' | 'delivered'): string {
    return `${this.prefix}{webhooks}:${status}`;
  }

  /** Owner of each delivery attempt in flight. */
  deliveryLeases(): string {
    return `${this.prefix}{webhooks}:leases`;
  }

  inboundSeen(provider: string, deliveryId: string): string {
    return `${this.prefix}{webhooks}:seen:${provider}:${deliveryId}`;
  }

  /**
   * A connect flow in progress (HASH, expires with the flow). Every connect key shares the
   * `{connect}` tag, so the device-flow poll schedule and a session change in one script.
   */
  connectSession(id: string): string {
    return `${this.prefix}{connect}:session:${id}`;
  }

  /** ZSET of device-flow session ids scored by when the provider may next be polled (ms), or a poll lease's end. */
  devicePolls(): string {
    return `${this.prefix}{connect}:device:due`;
  }

  activeKek(): string {
    return `${this.prefix}{keys}:active`;
  }

  replacedKeks(): string {
    return `${this.prefix}{keys}:replaced`;
  }

  replicas(): string {
    return `${this.prefix}{keys}:replicas`;
  }

  rewrapCurrent(): string {
    return `${this.prefix}{jobs}:rewrap:current`;
  }

  rewrapJob(id: string): string {
    return `${this.prefix}{jobs}:rewrap:${id}`;
  }

  /** User and provider of a credential key built here, or null. */
  parseCredentialKey(key: string): { user: string; provider: string } | null {
    const at = key.indexOf('}:cred:');
    if (!key.startsWith(this.prefix) || at < 0) return null;
    const member = key.slice(at + '}:cred:'.length);
    const split = member.lastIndexOf(':');
    return split > 0 ? { user: member.slice(0, split), provider: member.slice(split + 1) } : null;
  }

  /**
   * User and provider of any key holding a sealed record: a credential, or a deleted one
   * waiting for upstream revocation. Null for every other key.
   */
  parseSealedKey(key: string): { user: string; provider: string } | null {
    const credential = this.parseCredentialKey(key);
    if (credential) return credential;
    const at = key.indexOf('}:revoke:');
    if (!key.startsWith(this.prefix) || at < 0) return null;
    const member = parseRevocationMember(key.slice(at + '}:revoke:'.length));
    return member && { user: member.user, provider: member.provider };
  }

  /** SCAN pattern (with TYPE hash) covering every sealed record: credentials and pending revocations. */
  sealedPattern(): string {
    return `${this.prefix}{s*}:*`;
  }

  /** The shard number of a key built here, or null. */
  shardOfKey(key: string): number | null {
    if (!key.startsWith(this.prefix)) return null;
    const match = /^\{s(\d+)\}:/.exec(key.slice(this.prefix.length));
    return match ? Number(match[1]) : null;
  }

  /** Keys of one shard by number, for work that walks every shard (scheduler, counts). */
  shardKey(shard: number, name: 'due' | 'kek' | 'outbox' | 'leases' | 'states' | 'seq' | 'revocations'): string {
    return `${this.prefix}{s${shard}}:${name}`;
  }
}

export function dueMember(user: string, provider: string): string {
  return `${user}:${provider}`;
}

export function parseDueMember(member: string): { user: string; provider: string } {
  const at = member.lastIndexOf(':');
  return { user: member.slice(0, at), provider: member.slice(at + 1) };
}

/** "<version>:<user>:<provider>": version first (digits), provider last (no ':' in either). */
export function revocationMember(user: string, provider: string, version: number): string {
  return `${version}:${user}:${provider}`;
}

export function parseRevocationMember(member: string): { user: string; provider: string; version: number } | null {
  const first = member.indexOf(':');
  const last = member.lastIndexOf(':');
  const version = Number(member.slice(0, first));
  if (first <= 0 || last <= first + 1 || !Number.isSafeInteger(version)) return null;
  return { version, user: member.slice(first + 1, last), provider: member.slice(last + 1) };
}
