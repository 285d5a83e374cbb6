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
 *   <prefix>{s<n>}:outbox                   events written with the change that caused them
 *
 * Keys about the keyring, shared by every replica, live under their own tag:
 *
 *   <prefix>{keys}:active                   STRING the KEK id every replica seals with
 *   <prefix>{keys}:replicas                 HASH  replica id -> heartbeat JSON (key ids held, when)
 *   <prefix>{keys}:replaced                 SET   KEK ids that were active and have been replaced
 *   <prefix>{jobs}:rewrap:current           STRING id of the rewrap job running (one at a time)
 *   <prefix>{jobs}:rewrap:<id>              HASH  a rewrap job: state, target key, counts, cursor, owner lease
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

  kekCounts(user: string): string {
    return `${this.shard(user)}kek`;
  }

  versions(user: string): string {
    return `${this.shard(user)}seq`;
  }

  outbox(user: string): string {
    return `${this.shard(user)}outbox`;
  }

  leases(user: string): string {
    return `${this.shard(user)}leases`;
  }

  states(user: string): string {
    return `${this.shard(user)}states`;
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

  /** SCAN pattern matching every credential record. */
  credentialPattern(): string {
    return `${this.prefix}{s*}:cred:*`;
  }

  /** The shard number of a key built here, or null. */
  shardOfKey(key: string): number | null {
    if (!key.startsWith(this.prefix)) return null;
    const match = /^\{s(\d+)\}:/.exec(key.slice(this.prefix.length));
    return match ? Number(match[1]) : null;
  }

  /** Keys of one shard by number, for work that walks every shard (scheduler, counts). */
  shardKey(shard: number, name: 'due' | 'kek' | 'outbox' | 'leases' | 'states' | 'seq'): string {
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
