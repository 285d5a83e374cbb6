import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import type { RedisClient } from './redis';

/**
 * What differs between one Redis and a Redis Cluster, for the few steps that are not about one
 * hash slot: commands without a key (SCAN, INFO, PING, WAIT) reach one node, so on a cluster
 * they are sent to each master, or to the master holding a given key. On one Redis (Sentinel's
 * master included) that node is the client itself.
 */

/** A client that finds its master through Sentinel (ioredis leaves `sentinels` null otherwise). */
export function viaSentinel(client: RedisClient): client is Redis {
  return !(client instanceof Cluster) && Array.isArray(client.options.sentinels) && client.options.sentinels.length > 0;
}

/** The masters, in a stable order (by address). */
export function mastersOf(client: RedisClient): Redis[] {
  if (!(client instanceof Cluster)) return [client];
  return client.nodes('master').sort((a, b) => nodeId(a).localeCompare(nodeId(b)));
}

/**
 * How a master is named in logs, warnings and a rewrap job's cursor: `host:port` as the
 * cluster announces it. A Sentinel-backed client names the master it is connected to.
 */
export function nodeId(node: Redis): string {
  const { host, port } = node.options;
  if (viaSentinel(node) && node.stream?.remoteAddress) return `${node.stream.remoteAddress}:${node.stream.remotePort}`;
  return `${host ?? '127.0.0.1'}:${port ?? 6379}`;
}

/**
 * The master that holds `key`'s slot, for keyless commands that must follow a write to it
 * (WAIT counts the replicas that acknowledged this connection's writes to that master).
 */
export function masterFor(client: RedisClient, key: string): Redis {
  if (!(client instanceof Cluster)) return client;
  const owner = client.slots[hashSlot(key)]?.[0];
  const node = owner === undefined ? undefined : client.nodes('master').find((candidate) => nodeId(candidate) === owner);
  if (!node) throw new Error('the Redis Cluster slot map does not name a master for this key yet');
  return node;
}

/**
 * A fingerprint of which master serves which slots, and whether a slot is moving right now:
 * between two equal fingerprints with nothing moving, no key changed node. One Redis has one,
 * constant. Every master is asked, because a node lists only the migrations it takes part in.
 */
export async function topologyFingerprint(client: RedisClient): Promise<{ fingerprint: string; migrating: boolean }> {
  if (!(client instanceof Cluster)) return { fingerprint: 'single', migrating: false };
  const views = await Promise.all(mastersOf(client).map((node) => node.cluster('NODES') as Promise<string>));
  const masters = views
    .flatMap((view) => view.split('\n'))
    .map((line) => line.trim().split(' '))
    .filter((fields) => fields.length >= 8 && fields[2]?.split(',').includes('master'))
    // address, then the slots and any [slot->-id] / [slot-<-id] migration markers; not the
    // ping times and link states, which change all the time.
    .map((fields) => `${fields[1]?.split('@')[0]} ${fields.slice(8).join(' ')}`);
  return {
    fingerprint: createHash('sha256').update([...new Set(masters)].sort().join('\n')).digest('hex').slice(0, 16),
    migrating: masters.some((line) => line.includes('[')),
  };
}

/** Every key matching `pattern` on every master, a batch (one SCAN reply) at a time. */
export async function* scanKeys(client: RedisClient, pattern: string, count: number, type?: string): AsyncGenerator<string[]> {
  for (const node of mastersOf(client)) {
    let cursor = '0';
    do {
      const [next, batch] = type
        ? await node.scan(cursor, 'MATCH', pattern, 'COUNT', count, 'TYPE', type)
        : await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      if (batch.length > 0) yield batch;
    } while (cursor !== '0');
  }
}

/**
 * The Redis Cluster hash slot of a key (cluster specification, "Keys distribution model"):
 * CRC16 (XMODEM) of the hash tag, the part between the first `{` and the next `}` when that is
 * not empty, else of the whole key; modulo 16384.
 */
export function hashSlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b);
  let hashed = bytes;
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) hashed = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of hashed) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** How many times a cluster walk starts over because slots moved under it, at most. */
const MAX_PASSES = 3;

/** Where a walk over a cluster's masters stands: one SCAN cursor per master, null once it is done. */
interface ClusterWalk {
  pass: number;
  /** The slot map's fingerprint when this pass began. */
  topology: string;
  nodes: Record<string, string | null>;
}

export interface WalkStep {
  keys: string[];
  /** The position to persist and resume from. */
  position: string;
  finished: boolean;
  /** Finished, but slots kept moving through every pass: a key that moved may have been missed. */
  unsettled: boolean;
}

/**
 * One step of a resumable walk over every key matching `pattern`: one SCAN reply. Its position
 * is one string a job persists after each step and resumes from on any replica:
 *
 *   one Redis   the SCAN cursor itself, "0" to start (unchanged from before clusters, so a job
 *               begun by an older version resumes);
 *   a cluster   JSON {"pass":1,"topology":"<fingerprint>","nodes":{"<host:port>":"<cursor>"|null}}:
 *               masters are walked one after the other in address order, each from its own
 *               cursor; null marks one that is done. A master that appears (a promoted replica)
 *               is walked from the start; one that disappeared is dropped (its slots live on
 *               others now). SCAN only promises keys that stayed on the node it walks, so when
 *               the slot map changed during a pass, or a slot is still migrating at its end
 *               (resharding, failover), the walk does another pass over every master, up to 3;
 *               re-visiting a key is harmless to its users.
 */
export async function walkStep(client: RedisClient, position: string, pattern: string, count: number, type: string): Promise<WalkStep> {
  if (!(client instanceof Cluster)) {
    const [next, keys] = await client.scan(position, 'MATCH', pattern, 'COUNT', count, 'TYPE', type);
    return { keys, position: next, finished: next === '0', unsettled: false };
  }
  const masters = mastersOf(client);
  // Without masters (the client is between slot maps) every node would look done.
  if (masters.length === 0) throw new Error('no Redis Cluster master is known yet');
  const ids = masters.map(nodeId);
  const fresh = async (pass: number): Promise<ClusterWalk> => ({ pass, topology: (await topologyFingerprint(client)).fingerprint, nodes: Object.fromEntries(ids.map((id) => [id, '0'])) });
  const walk = position.startsWith('{') ? (JSON.parse(position) as ClusterWalk) : await fresh(1);
  for (const id of ids) if (!(id in walk.nodes)) walk.nodes[id] = '0';
  for (const id of Object.keys(walk.nodes)) if (!ids.includes(id)) delete walk.nodes[id];
  const at = ids.findIndex((id) => walk.nodes[id] !== null);
  if (at < 0) {
    // A slot still migrating at the end may have moved keys behind the walk, even with equal fingerprints.
    const now = await topologyFingerprint(client);
    const moved = now.fingerprint !== walk.topology || now.migrating;
    if (moved && walk.pass < MAX_PASSES) return { keys: [], position: JSON.stringify(await fresh(walk.pass + 1)), finished: false, unsettled: false };
    return { keys: [], position: JSON.stringify(walk), finished: true, unsettled: moved };
  }
  const id = ids[at]!;
  const [next, keys] = await masters[at]!.scan(walk.nodes[id]!, 'MATCH', pattern, 'COUNT', count, 'TYPE', type);
  walk.nodes[id] = next === '0' ? null : next;
  return { keys, position: JSON.stringify(walk), finished: false, unsettled: false };
}
