import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, Redis, ReplyError, type RedisOptions as IORedisOptions, type Result } from 'ioredis';
import { AppError, UnavailableError } from '../errors';
import { parseRedisUrl, splitUrlList } from './redis-url';
import { mastersOf, viaSentinel } from './topology';

/**
 * The vault's Redis: one server (`redis.url`), a Redis Cluster (`redis.cluster`), or the master
 * of a group watched by Redis Sentinel (`redis.sentinel`). The rest of the vault sees one
 * RedisClient and must not care which, so every multi-key step keeps its keys in one hash slot
 * (store/keys.ts), work over many shards goes out as single commands sent together (one Redis
 * batches them with automatic pipelining; a Cluster writes them back to back on each node's
 * connection), and what must reach every node (SCAN, INFO, PING, WAIT) goes through
 * store/topology.ts.
 */
export type RedisClient = Redis | Cluster;

/**
 * The Lua scripts of store/lua/, defined on every connection with defineCommand (EVALSHA, and
 * EVAL again after a Redis restart flushed the script cache). Their replies are arrays whose
 * first element is a status from LuaStatus. A Cluster routes each call by its first key; the
 * scripts touch only the keys they are given, which share one hash tag.
 */
const SCRIPTS = {
  putCredential: { file: 'put-credential.lua', keys: 8 },
  deleteCredential: { file: 'delete-credential.lua', keys: 9 },
  // Three keys per shard: numberOfKeys is given with each call.
  claimDue: { file: 'claim-due.lua', keys: null },
  finishRevocation: { file: 'finish-revocation.lua', keys: 3 },
  acquireLease: { file: 'acquire-lease.lua', keys: 3 },
  leaseHeld: { file: 'lease-held.lua', keys: 1 },
  releaseLease: { file: 'release-lease.lua', keys: 3 },
  recordFailure: { file: 'record-failure.lua', keys: 5 },
  rewrapCredential: { file: 'rewrap-credential.lua', keys: 2 },
  jobLease: { file: 'job-lease.lua', keys: 1 },
  activateKey: { file: 'activate-key.lua', keys: 3 },
  // The number of deliveries varies: numberOfKeys is given with each call.
  enqueueDeliveries: { file: 'enqueue-deliveries.lua', keys: null },
  claimDeliveries: { file: 'claim-deliveries.lua', keys: 2 },
  completeDelivery: { file: 'complete-delivery.lua', keys: 5 },
  retryDelivery: { file: 'retry-delivery.lua', keys: 4 },
  claimDevicePolls: { file: 'claim-device-polls.lua', keys: 1 },
  timeAt: { file: 'time-at.lua', keys: 1 },
  // One key per list: numberOfKeys is given with each call.
  listLengths: { file: 'list-lengths.lua', keys: null },
} as const;

/** First element of a script's reply. 0 means "absent" (put, delete) or "held by another" (acquire-lease). */
export enum LuaStatus {
  NoCredential = -3,
  TooSoon = -2,
  VersionMismatch = -1,
  Absent = 0,
  Done = 1,
}

type ScriptArg = string | number | Buffer;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    putCredential(...args: ScriptArg[]): Result<[number, number, string?, number?], Context>;
    deleteCredential(...args: ScriptArg[]): Result<[number, number], Context>;
    /** claimDue(numberOfKeys, ...keys, ...args) */
    claimDue(...args: ScriptArg[]): Result<[number, ...(number | string)[]], Context>;
    finishRevocation(...args: ScriptArg[]): Result<number, Context>;
    acquireLease(...args: ScriptArg[]): Result<[number, number], Context>;
    leaseHeld(...args: ScriptArg[]): Result<number, Context>;
    releaseLease(...args: ScriptArg[]): Result<number, Context>;
    recordFailure(...args: ScriptArg[]): Result<[number, number, number, number, number, number], Context>;
    rewrapCredential(...args: ScriptArg[]): Result<number, Context>;
    jobLease(...args: ScriptArg[]): Result<[number, number], Context>;
    activateKey(...args: ScriptArg[]): Result<number, Context>;
    /** enqueueDeliveries(numberOfKeys, ...keys, ...args) */
    enqueueDeliveries(...args: ScriptArg[]): Result<number, Context>;
    claimDeliveries(...args: ScriptArg[]): Result<[number, ...string[]], Context>;
    completeDelivery(...args: ScriptArg[]): Result<[number, number], Context>;
    retryDelivery(...args: ScriptArg[]): Result<number, Context>;
    claimDevicePolls(...args: ScriptArg[]): Result<[number, ...string[]], Context>;
    /** timeAt(key): TIME of the master holding `key`. */
    timeAt(key: string): Result<[string, string], Context>;
    /** listLengths(numberOfKeys, ...keys): LLEN of each. */
    listLengths(...args: ScriptArg[]): Result<number[], Context>;
  }
}

export interface RedisOptions {
  /** Shown in CLIENT LIST, so an operator can tell the vault's connections apart. */
  connectionName?: string;
}

/** Where the vault's Redis is, as the configuration says (secrets revealed: never log this). */
export type RedisConnection =
  | { kind: 'url'; url: string }
  | { kind: 'cluster'; urls: string[] }
  | {
      kind: 'sentinel';
      sentinels: { host: string; port: number }[];
      name: string;
      username?: string | undefined;
      password?: string | undefined;
      sentinelUsername?: string | undefined;
      sentinelPassword?: string | undefined;
      tls: boolean;
    };

/**
 * Shared by every kind of connection. With the offline queue off, a command issued while Redis
 * is unreachable is rejected at once (and answered 503) instead of piling up. The client
 * reconnects by itself; the first connect is awaited by the caller.
 */
function failFast(options: RedisOptions) {
  return {
    connectTimeout: 5000,
    commandTimeout: 5000,
    maxRetriesPerRequest: 1,
    connectionName: options.connectionName ?? 'token-vault',
  } satisfies IORedisOptions;
}

const retryStrategy = (attempt: number) => Math.min(100 * attempt, 2000);

function defineScripts(client: RedisClient): void {
  // Errors reach callers as rejected commands and /readyz; the event itself only needs a listener.
  client.on('error', () => undefined);
  for (const [name, script] of Object.entries(SCRIPTS)) {
    const lua = readFileSync(join(__dirname, 'lua', script.file), 'utf8');
    client.defineCommand(name, script.keys === null ? { lua } : { numberOfKeys: script.keys, lua });
  }
}

/** One Redis server. */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, enableAutoPipelining: true, retryStrategy, ...failFast(options) });
  defineScripts(redis);
  return redis;
}

/**
 * A Redis Cluster from its seed nodes (they share a scheme and credentials: the schema checks).
 * Reads go to masters too (`scaleReads: master`): a replica may lag, and a lagging read of a
 * credential could hand out a refresh token that rotation already replaced.
 */
export function createCluster(urls: string[], options: RedisOptions = {}): Cluster {
  const addresses = urls.flatMap(splitUrlList).map((text) => {
    const url = parseRedisUrl(text);
    if ('problem' in url) throw new Error(`redis.cluster: a seed node URL ${url.problem}`);
    return url;
  });
  const first = addresses[0];
  if (!first) throw new Error('redis.cluster: no seed node');
  const cluster = new Cluster(
    addresses.map(({ host, port }) => ({ host, port })),
    {
      lazyConnect: true,
      enableOfflineQueue: false,
      // Automatic pipelining would batch each node's commands into pipelines, and a MOVED or ASK
      // inside such a batch reaches the caller (unless every command in it failed the same way)
      // without a refresh of the slot map: after a resharding, commands would fail until the next
      // periodic refresh. Sent one by one, each command follows MOVED/ASK itself; commands to a
      // node still share its connection and are written back to back, pipelined on the wire.
      enableAutoPipelining: false,
      scaleReads: 'master',
      // The slot map is also refreshed on every MOVED; the interval catches a failover that
      // happens while this replica is idle.
      slotsRefreshInterval: 5000,
      slotsRefreshTimeout: 2000,
      // Fail fast, as on one Redis: a command for a master that is down gives up after about
      // 0.6 s (the default, 16 tries 100 ms apart, held callers for 2 to 3 s); a failover takes
      // seconds, and the caller is told to retry (503). A MOVED is followed at once and needs
      // one redirection, two while a slot is migrating.
      maxRedirections: 6,
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      clusterRetryStrategy: retryStrategy,
      redisOptions: {
        ...failFast(options),
        ...(first.username !== undefined ? { username: first.username } : {}),
        ...(first.password !== undefined ? { password: first.password } : {}),
        ...(first.tls ? { tls: {} } : {}),
      },
    },
  );
  defineScripts(cluster);
  return cluster;
}

/**
 * The master of a Sentinel group. The client asks the sentinels where the master is, checks
 * the node's role, and after a failover (a switch announced by the sentinels, a lost
 * connection, or a write refused with READONLY by a demoted master) asks again.
 */
export function createSentinelRedis(connection: Extract<RedisConnection, { kind: 'sentinel' }>, options: RedisOptions = {}): Redis {
  const redis = new Redis({
    sentinels: connection.sentinels,
    name: connection.name,
    role: 'master',
    ...(connection.username !== undefined ? { username: connection.username } : {}),
    ...(connection.password !== undefined ? { password: connection.password } : {}),
    ...(connection.sentinelUsername !== undefined ? { sentinelUsername: connection.sentinelUsername } : {}),
    ...(connection.sentinelPassword !== undefined ? { sentinelPassword: connection.sentinelPassword } : {}),
    ...(connection.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
    failoverDetector: true,
    sentinelCommandTimeout: 2000,
    // The command that met READONLY fails (503, the caller retries); the reconnect finds the new master.
    reconnectOnError: (err) => /^READONLY\b/.test(err.message),
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    retryStrategy,
    ...failFast(options),
  });
  defineScripts(redis);
  return redis;
}

export function createRedisClient(connection: RedisConnection, options: RedisOptions = {}): RedisClient {
  switch (connection.kind) {
    case 'url':
      return createRedis(connection.url, options);
    case 'cluster':
      return createCluster(connection.urls, options);
    case 'sentinel':
      return createSentinelRedis(connection, options);
  }
}

/** Connects, or throws after `timeoutMs` with the reason (never the URL: it may hold a password). */
export async function connectRedis(redis: RedisClient, timeoutMs = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot connect to Redis: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

export interface OpenOptions extends RedisOptions {
  timeoutMs?: number;
  /** Told what the vault found out about its Redis (a url that is a cluster node). */
  notice?: (message: string) => void;
}

/**
 * Creates and connects the client for `connection`. A url that answers as a Redis Cluster node
 * becomes the seed of a Cluster client (a managed cluster's configuration endpoint is one URL);
 * one that answers as a Sentinel is refused, since a sentinel holds no data.
 */
export async function openRedis(connection: RedisConnection, options: OpenOptions = {}): Promise<RedisClient> {
  const client = createRedisClient(connection, options);
  await connectRedis(client, options.timeoutMs);
  if (client instanceof Cluster) await reachMasters(client);
  if (connection.kind !== 'url') return client;
  const mode = await serverMode(client);
  if (mode === 'sentinel') {
    client.disconnect();
    throw new Error('cannot connect to Redis: redis.url names a Redis Sentinel, which holds no data; configure redis.sentinel with the sentinels and the master group name');
  }
  if (mode !== 'cluster') return client;
  client.disconnect();
  options.notice?.('redis.url answers as a Redis Cluster node: using it as the seed of the cluster');
  const cluster = createCluster([connection.url], options);
  await connectRedis(cluster, options.timeoutMs);
  await reachMasters(cluster);
  return cluster;
}

/**
 * A Cluster client connects to the other masters on first use; the first requests (and the
 * first sweep over every shard) would wait for those connections. One PING to each master makes
 * them now. A master that does not answer does not stop the start: its slots answer 503 until it does.
 */
async function reachMasters(cluster: Cluster): Promise<void> {
  await Promise.all(mastersOf(cluster).map((node) => node.ping().catch(() => undefined)));
}

/**
 * At shutdown, once nothing issues commands any more: QUIT (replies to commands already sent
 * still arrive), or a plain disconnect when Redis is unreachable. A Sentinel-backed client is
 * disconnected instead: QUIT leaves open the connections ioredis keeps to the sentinels to hear
 * of a failover, and they would reconnect for ever.
 */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (viaSentinel(client)) return client.disconnect();
  await client.quit().catch(() => client.disconnect());
}

/** redis_mode of INFO server; "standalone" when INFO is not allowed (a restricted ACL user). */
async function serverMode(redis: RedisClient): Promise<string> {
  try {
    return /^redis_mode:(\S+)/m.exec(await redis.info('server'))?.[1] ?? 'standalone';
  } catch {
    return 'standalone';
  }
}

/** Replies that mean "Redis is there but cannot serve right now": answered 503, not 500. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS|MISCONF|MOVED|ASK)\b/;

/** Maps a failed Redis call to what the caller should see. */
export function toStoreError(err: unknown): Error {
  if (err instanceof AppError) return err;
  if (err instanceof ReplyError && !TRANSIENT_REPLY.test((err as Error).message)) return err as Error;
  return new UnavailableError('the credential store is unavailable; retry shortly', 1, err);
}

/** Runs a Redis operation, turning its failures into what the caller should see (toStoreError). */
export async function withStoreErrors<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    throw toStoreError(err);
  }
}
