import { Cluster, type Redis } from 'ioredis';
import type { Logger } from 'pino';
import { KeyringError, type Keyring } from '../crypto/keyring';
import type { KeyringHolder } from '../crypto/keyring-holder';
import { InvalidRequestError, KeyInUseError } from '../errors';
import { newEventId, type EventBus } from '../events/event-bus';
import type { AuditLog } from '../observability/logger';
import { SHARD_COUNT, type Keys } from '../store/keys';
import { withStoreErrors, type RedisClient } from '../store/redis';
import { masterFor, scanKeys } from '../store/topology';
import { encodeOutboxEntry } from '../webhooks/outbound/outbox';

/**
 * The keyring across replicas (DESIGN §6). Each replica publishes, every heartbeat, the KEK ids
 * it holds. The KEK id every replica seals with lives in Redis; a replica asks for its keyring's
 * active key to become that id when it starts or reloads, and the switch happens only once every
 * live replica holds the key, so no replica ever meets a record it cannot open. A reload that
 * would drop a key still protecting records, or one a live replica seals with, is refused and
 * the old keyring stays in force.
 */
export interface KeyAdminDeps {
  redis: RedisClient;
  keys: Keys;
  holder: KeyringHolder;
  /** Reads the keyring again from its source (file or environment). */
  readKeyring: () => Keyring;
  logger: Logger;
  audit: AuditLog;
  events: EventBus;
  replicaId: string;
  heartbeatMs?: number;
  /** A replica whose heartbeat is older than this is not live. */
  liveMs?: number;
}

export interface Heartbeat {
  keys: string[];
  /** Its keyring's active key. */
  wants: string;
  at: number;
}

export interface KeyStatus {
  active: string | null;
  keys: { id: string; records: number; active: boolean; replicas: string[] }[];
}

const REREAD_GAP_MS = 5000;

export class KeyAdmin {
  private timer: NodeJS.Timeout | undefined;
  /** The key this replica asked to activate and Redis does not show yet. */
  private pending: string | undefined;
  /** The request came from an operator's reload (which may bring back a replaced key), not a start. */
  private pendingExplicit = false;
  private lastReread = 0;
  private readonly heartbeatMs: number;
  private readonly liveMs: number;

  constructor(private readonly deps: KeyAdminDeps) {
    this.heartbeatMs = deps.heartbeatMs ?? 5000;
    this.liveMs = deps.liveMs ?? 3 * this.heartbeatMs;
  }

  async start(): Promise<void> {
    this.pending = this.deps.holder.get()?.activeId;
    this.pendingExplicit = false;
    await this.heartbeat();
    this.timer = setInterval(() => void this.heartbeat().catch((err: unknown) => this.deps.logger.warn({ err: describe(err) }, 'key heartbeat failed')), this.heartbeatMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.deps.redis.hdel(this.deps.keys.replicas(), this.deps.replicaId).catch(() => undefined);
  }

  /** Publishes what this replica holds, reads the shared active id, activates a pending key when every live replica holds it. */
  async heartbeat(): Promise<void> {
    const { redis, keys, holder, replicaId } = this.deps;
    const keyring = holder.get();
    if (!keyring) return;
    const beat: Heartbeat = { keys: keyring.ids().sort(), wants: keyring.activeId, at: Date.now() };
    await withStoreErrors(() => redis.hset(keys.replicas(), replicaId, JSON.stringify(beat)));
    // The first replica ever to start sets the shared active key.
    await withStoreErrors(() => redis.set(keys.activeKek(), keyring.activeId, 'NX'));
    let active = await withStoreErrors(() => redis.get(keys.activeKek()));
    if (this.pending !== undefined && this.pending !== active && !this.pendingExplicit) {
      // A replica starting with a stale keyring must not undo a rotation: a key that was active
      // and has been replaced comes back only through an explicit reload.
      if ((await withStoreErrors(() => redis.sismember(keys.replacedKeks(), this.pending!))) === 1) {
        this.deps.logger.warn({ key: this.pending, active }, 'not re-activating a key that was replaced; reload the keyring to bring it back deliberately');
        this.pending = undefined;
      }
    }
    if (this.pending !== undefined && this.pending !== active) {
      const live = await this.liveReplicas();
      const missing = [...live].filter(([, heartbeat]) => !heartbeat.keys.includes(this.pending!)).map(([id]) => id);
      if (missing.length === 0) {
        const from = active;
        const to = this.pending;
        const event = { id: newEventId(), type: 'key.rotated' as const, at: Date.now(), data: { from, to } };
        const activated = await withStoreErrors(() => redis.activateKey(keys.activeKek(), keys.replacedKeks(), keys.globalOutbox('keys'), from ?? '', to, encodeOutboxEntry(event)));
        active = await withStoreErrors(() => redis.get(keys.activeKek()));
        if (activated === 1) {
          this.deps.logger.info({ from, to }, 'activated key: every live replica holds it');
          this.deps.audit.record({ action: 'key.activated', caller: `replica:${replicaId}`, outcome: 'ok', kek: to, previous: from });
          this.deps.events.emit({ type: 'key.rotated', id: event.id, from, to });
        }
      } else {
        this.deps.logger.warn({ key: this.pending, waitingFor: missing }, 'key not activated yet: some live replicas do not hold it');
      }
    }
    if (this.pending === active) this.pending = undefined;
    if (this.pending === undefined) this.pendingExplicit = false;
    holder.setSharedActive(active ?? undefined);
  }

  /** Live replicas and their heartbeats; stale entries are removed. */
  async liveReplicas(): Promise<Map<string, Heartbeat>> {
    const { redis, keys } = this.deps;
    const all = await withStoreErrors(() => redis.hgetall(keys.replicas()));
    const live = new Map<string, Heartbeat>();
    const stale: string[] = [];
    for (const [id, json] of Object.entries(all)) {
      const heartbeat = JSON.parse(json) as Heartbeat;
      if (Date.now() - heartbeat.at <= this.liveMs) live.set(id, heartbeat);
      else stale.push(id);
    }
    if (stale.length > 0) await withStoreErrors(() => redis.hdel(keys.replicas(), ...stale));
    return live;
  }

  /** Records protected by each KEK, summed over every shard (kept exact by the write scripts). */
  async recordsByKek(): Promise<Record<string, number>> {
    const { redis, keys } = this.deps;
    // One command per shard, all sent at once: pipelined per Redis node (store/redis.ts).
    const hashes = await withStoreErrors(() => Promise.all(Array.from({ length: SHARD_COUNT }, (_, shard) => redis.hgetall(keys.shardKey(shard, 'kek')))));
    const counts: Record<string, number> = {};
    for (const hash of hashes) {
      for (const [id, n] of Object.entries(hash)) counts[id] = (counts[id] ?? 0) + Number(n);
    }
    return counts;
  }

  async status(): Promise<KeyStatus> {
    const [active, records, live] = await Promise.all([withStoreErrors(() => this.deps.redis.get(this.deps.keys.activeKek())), this.recordsByKek(), this.liveReplicas()]);
    const ids = new Set<string>([...(this.deps.holder.get()?.ids() ?? []), ...Object.keys(records)]);
    for (const heartbeat of live.values()) heartbeat.keys.forEach((id) => ids.add(id));
    return {
      active,
      keys: [...ids].sort().map((id) => ({
        id,
        records: records[id] ?? 0,
        active: id === active,
        replicas: [...live].filter(([, heartbeat]) => heartbeat.keys.includes(id)).map(([replica]) => replica).sort(),
      })),
    };
  }

  /**
   * Re-reads the keyring (POST /admin/keys/reload, SIGHUP, a change of the keyring file). A file
   * that does not parse is refused (400); one that drops a key still protecting records, or the
   * key replicas seal with, is refused (409 key_in_use, with the counts). The old keyring stays
   * in force in both cases.
   */
  async reload(caller: string): Promise<KeyStatus> {
    let next: Keyring;
    try {
      next = this.deps.readKeyring();
    } catch (err) {
      const reason = err instanceof KeyringError ? err.message : `cannot read the keyring (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
      this.deps.audit.record({ action: 'key.reload', caller, outcome: 'refused', reason });
      throw new InvalidRequestError(`keyring reload refused, the old keyring stays in force: ${reason}`);
    }
    const [records, live, active] = await Promise.all([this.recordsByKek(), this.liveReplicas(), withStoreErrors(() => this.deps.redis.get(this.deps.keys.activeKek()))]);
    const needed = Object.entries(records)
      .filter(([id, n]) => n > 0 && !next.has(id))
      .map(([id, n]) => ({ path: id, message: `${n} records are sealed under it` }));
    if (active !== null && !next.has(active)) needed.push({ path: active, message: 'it is the active key every replica seals with' });
    for (const [replica, heartbeat] of live) {
      if (replica !== this.deps.replicaId && !next.has(heartbeat.wants)) needed.push({ path: heartbeat.wants, message: `replica ${replica} has it as its active key` });
    }
    if (needed.length > 0) {
      this.deps.audit.record({ action: 'key.reload', caller, outcome: 'refused', missing: needed.map((n) => n.path) });
      throw new KeyInUseError(`keyring reload refused, the old keyring stays in force: it lacks keys still in use (${needed.map((n) => `${n.path}: ${n.message}`).join('; ')})`, needed);
    }
    this.deps.holder.replace(next);
    this.pending = next.activeId;
    this.pendingExplicit = true;
    await this.heartbeat();
    this.deps.audit.record({ action: 'key.reload', caller, outcome: 'ok', keys: next.ids(), wants: next.activeId });
    return this.status();
  }

  /**
   * The wrapper met a KEK id it does not hold: re-read the keyring once (at most every 5 s),
   * quietly keeping the old one if the new one is unusable.
   */
  async rereadForUnknownKey(): Promise<void> {
    if (Date.now() - this.lastReread < REREAD_GAP_MS) return;
    this.lastReread = Date.now();
    try {
      await this.reload('replica:unknown-key');
    } catch (err) {
      this.deps.logger.warn({ reason: describe(err) }, 'keyring re-read after an unknown key id did not help');
    }
  }

  /**
   * Recounts records per KEK and per state in every shard and repairs the counters. One SCAN of
   * the keyspace lists the records; each shard is then written under WATCH, and a shard whose
   * version counter moved since the scan (a write raced it) is counted again, up to 3 passes.
   */
  async recount(): Promise<{ shards: number; repaired: number; busy: number[] }> {
    const { keys } = this.deps;
    let pending = Array.from({ length: SHARD_COUNT }, (_, i) => i);
    let repaired = 0;
    // WATCH belongs to a connection: one of our own, used for one shard at a time.
    const client = this.transactionClient();
    try {
      await withStoreErrors(() => client.connect());
      for (let pass = 0; pass < 3 && pending.length > 0; pass++) {
        const seqBefore = await this.seqs(pending);
        const byShard = await this.scanCredentials(new Set(pending));
        const retry: number[] = [];
        for (const shard of pending) {
          const kekKey = keys.shardKey(shard, 'kek');
          // The shard's master itself: WATCH, the reads and EXEC must share its connection, which
          // a Cluster client would not promise for a keyless UNWATCH.
          let node: Redis;
          try {
            node = masterFor(client, kekKey);
          } catch {
            retry.push(shard);
            continue;
          }
          if (await this.recountShard(node, shard, byShard.get(shard) ?? [], seqBefore.get(shard) ?? null)) repaired++;
          else retry.push(shard);
        }
        pending = retry;
      }
    } finally {
      client.disconnect();
    }
    this.deps.audit.record({ action: 'key.recount', caller: 'admin', outcome: pending.length ? 'failed' : 'ok', busy: pending });
    return { shards: SHARD_COUNT, repaired, busy: pending };
  }

  /** A second client whose connections carry WATCH state for recount (one per node on a cluster). */
  private transactionClient(): RedisClient {
    const { redis } = this.deps;
    const client = redis instanceof Cluster ? redis.duplicate(undefined, { enableOfflineQueue: true }) : redis.duplicate({ enableOfflineQueue: true });
    client.on('error', () => undefined);
    return client;
  }

  /**
   * Rewrites one shard's counters from its records under WATCH; false when a write raced it (its
   * version counter moved since the scan, or EXEC was aborted) or its slot moved to another node.
   */
  private async recountShard(node: Redis, shard: number, members: string[], seqBefore: string | null): Promise<boolean> {
    const { keys } = this.deps;
    const kekKey = keys.shardKey(shard, 'kek');
    const statesKey = keys.shardKey(shard, 'states');
    const seqKey = keys.shardKey(shard, 'seq');
    try {
      await node.watch(kekKey, statesKey, seqKey);
      if ((await node.get(seqKey)) !== seqBefore) {
        await node.unwatch();
        return false;
      }
      const rows = members.length ? await Promise.all(members.map((key) => node.hmget(key, 'kek', 'state'))) : [];
      const kek: Record<string, number> = {};
      const states: Record<string, number> = {};
      rows.forEach(([id, state], i) => {
        if (id) kek[id] = (kek[id] ?? 0) + 1;
        // Deleted records waiting for upstream revocation still hold their KEK, but are no credential.
        if (state && keys.parseCredentialKey(members[i]!)) states[state] = (states[state] ?? 0) + 1;
      });
      const multi = node.multi().del(kekKey, statesKey);
      if (Object.keys(kek).length) multi.hset(kekKey, kek);
      if (Object.keys(states).length) multi.hset(statesKey, states);
      return (await multi.exec()) !== null;
    } catch (err) {
      // The slot is being moved to another master: count this shard again in the next pass.
      if (err instanceof Error && /^(MOVED|ASK|TRYAGAIN)\b/.test(err.message)) {
        await node.unwatch().catch(() => undefined);
        return false;
      }
      throw err;
    }
  }

  private async seqs(shards: number[]): Promise<Map<number, string | null>> {
    const { redis, keys } = this.deps;
    // One GET per shard rather than an MGET: the shards' keys live in different hash slots.
    const values = await withStoreErrors(() => Promise.all(shards.map((shard) => redis.get(keys.shardKey(shard, 'seq')))));
    return new Map(shards.map((shard, i) => [shard, values[i] ?? null]));
  }

  /** Every record holding a sealed blob (credentials and pending revocations), by shard, from every master. */
  private async scanCredentials(shards: Set<number>): Promise<Map<number, string[]>> {
    const byShard = new Map<number, string[]>();
    const seen = new Set<string>();
    await withStoreErrors(async () => {
      for await (const batch of scanKeys(this.deps.redis, this.deps.keys.sealedPattern(), 1000, 'hash')) {
        for (const key of batch) {
          // SCAN may return a key twice; a cluster may also show it on two nodes while its slot moves.
          if (seen.has(key) || !this.deps.keys.parseSealedKey(key)) continue;
          seen.add(key);
          const shard = this.deps.keys.shardOfKey(key);
          if (shard === null || !shards.has(shard)) continue;
          const list = byShard.get(shard) ?? [];
          list.push(key);
          byShard.set(shard, list);
        }
      }
    });
    return byShard;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
