import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePorts, RedisProcess, until } from './redis-process';
import type { RedisTarget } from './redis-server';

export const SENTINEL_GROUP = 'mymaster';

/**
 * A Sentinel setup on loopback, on random free ports: one master and one replica (each with its
 * own data directory and AOF) watched by one sentinel with quorum 1, which can fail over on
 * demand (SENTINEL FAILOVER) in a few seconds.
 */
export class SentinelGroup implements RedisTarget {
  readonly kind = 'sentinel';

  private constructor(
    readonly dir: string,
    private readonly data: [RedisProcess, RedisProcess],
    private readonly sentinel: RedisProcess,
  ) {}

  static async start(): Promise<SentinelGroup> {
    const dir = mkdtempSync(join(tmpdir(), 'tv-sentinel-'));
    const [masterPort, replicaPort, sentinelPort] = (await freePorts(3)) as [number, number, number];
    const started: RedisProcess[] = [];
    try {
      const node = async (port: number, extra: string[]) => {
        const nodeDir = join(dir, String(port));
        mkdirSync(nodeDir, { recursive: true });
        const server = await RedisProcess.start(port, ['--port', String(port), '--bind', '127.0.0.1', '--dir', nodeDir, '--appendonly', 'yes', '--save', '', ...extra]);
        started.push(server);
        return server;
      };
      const master = await node(masterPort, []);
      const replica = await node(replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
      await until(async () => /^master_link_status:up/m.test(await info(replicaPort, 'replication')), 'the replica to sync');
      // Sentinel rewrites its configuration file, so it gets one of its own.
      const config = join(dir, 'sentinel.conf');
      writeFileSync(
        config,
        [
          `port ${sentinelPort}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_GROUP} 127.0.0.1 ${masterPort} 1`,
          `sentinel down-after-milliseconds ${SENTINEL_GROUP} 2000`,
          `sentinel failover-timeout ${SENTINEL_GROUP} 10000`,
          '',
        ].join('\n'),
      );
      const sentinel = await RedisProcess.start(sentinelPort, [config, '--sentinel']);
      started.push(sentinel);
      const group = new SentinelGroup(dir, [master, replica], sentinel);
      // A failover needs a replica the sentinel has heard from.
      await until(async () => (await group.sentinelReplicas()).some((flags) => flags === 'slave'), 'the sentinel to discover the replica', 20_000);
      return group;
    } catch (err) {
      await Promise.all(started.map((server) => server.kill()));
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get sentinelPort(): number {
    return this.sentinel.port;
  }

  get dataPorts(): [number, number] {
    return [this.data[0].port, this.data[1].port];
  }

  /** The `redis:` configuration block that points a vault at the group through its sentinel. */
  config(): Record<string, unknown> {
    return { sentinel: { sentinels: [`127.0.0.1:${this.sentinel.port}`], name: SENTINEL_GROUP } };
  }

  /** A client of the current master, found through the sentinel (it follows a failover). */
  client(): Redis {
    const redis = new Redis({ sentinels: [{ host: '127.0.0.1', port: this.sentinel.port }], name: SENTINEL_GROUP, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    return redis;
  }

  /** A plain connection to one data node. */
  nodeClient(port: number): Redis {
    const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    return redis;
  }

  /** The port the sentinel names as the master now. */
  async masterPort(): Promise<number> {
    const sentinel = this.nodeClient(this.sentinel.port);
    try {
      const [, port] = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_GROUP)) as [string, string];
      return Number(port);
    } finally {
      sentinel.disconnect();
    }
  }

  /**
   * SENTINEL FAILOVER: the replica becomes the master and the old master its replica. Resolves
   * once the sentinel names the new master and that node says it is one.
   */
  async failover(): Promise<number> {
    const before = await this.masterPort();
    const sentinel = this.nodeClient(this.sentinel.port);
    try {
      // NOGOODSLAVE while the sentinel has not heard from the replica recently enough: ask again.
      await until(async () => (await sentinel.call('SENTINEL', 'FAILOVER', SENTINEL_GROUP)) === 'OK', 'SENTINEL FAILOVER to be accepted', 20_000, 250);
    } finally {
      sentinel.disconnect();
    }
    let after = before;
    await until(async () => {
      after = await this.masterPort();
      return after !== before && /^role:master/m.test(await info(after, 'replication'));
    }, 'the new master', 30_000);
    return after;
  }

  async stop(): Promise<void> {
    await Promise.all([this.sentinel.kill(), ...this.data.map((server) => server.kill())]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The flags of each replica the sentinel knows ("slave" when it is fine). */
  private async sentinelReplicas(): Promise<string[]> {
    const sentinel = this.nodeClient(this.sentinel.port);
    try {
      const replicas = (await sentinel.call('SENTINEL', 'REPLICAS', SENTINEL_GROUP)) as string[][];
      return replicas.map((fields) => fields[fields.indexOf('flags') + 1] ?? '');
    } finally {
      sentinel.disconnect();
    }
  }
}

async function info(port: number, section: string): Promise<string> {
  const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => undefined);
  try {
    return await redis.info(section);
  } finally {
    redis.disconnect();
  }
}
