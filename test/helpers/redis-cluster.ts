import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { freePorts, RedisProcess, sleep, until } from './redis-process';
import type { RedisTarget } from './redis-server';

/**
 * A real Redis Cluster of three masters (no replicas) on loopback, on random free ports, each
 * node with its own data directory and AOF, made with `redis-cli --cluster create`. Started
 * once per test file, like RedisServer.
 */
export class RedisCluster implements RedisTarget {
  readonly kind = 'cluster';

  private constructor(
    readonly dir: string,
    private readonly nodes: RedisProcess[],
    /** Each node's redis-server arguments, to start it again. */
    private readonly args: Map<number, string[]>,
  ) {}

  static async start(masters = 3): Promise<RedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'tv-cluster-'));
    for (let attempt = 0; ; attempt++) {
      try {
        return await RedisCluster.boot(dir, masters);
      } catch (err) {
        // A port taken between choosing and binding: try other ports.
        if (attempt >= 2) {
          rmSync(dir, { recursive: true, force: true });
          throw err;
        }
      }
    }
  }

  private static async boot(dir: string, masters: number): Promise<RedisCluster> {
    // The cluster bus port is given explicitly (Redis 7): the default, port + 10000, may be taken.
    // Redis 6 has no cluster-port: there, ports are chosen whose port + 10000 is free as well.
    const busPortOption = redisMajorVersion() >= 7;
    const ports = busPortOption ? await freePorts(masters * 2) : await portsWithFreeBus(masters);
    const nodes: RedisProcess[] = [];
    const args = new Map<number, string[]>();
    try {
      for (let i = 0; i < masters; i++) {
        const port = ports[i]!;
        const nodeDir = join(dir, String(port));
        mkdirSync(nodeDir, { recursive: true });
        args.set(port, [
          '--port', String(port),
          '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes',
          ...(busPortOption ? ['--cluster-port', String(ports[masters + i])] : []),
          '--cluster-config-file', join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', '5000',
          '--dir', nodeDir,
          '--appendonly', 'yes',
          '--save', '',
        ]);
        nodes.push(await RedisProcess.start(port, args.get(port)!));
      }
      await promisify(execFile)('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes']);
      const cluster = new RedisCluster(dir, nodes, args);
      await cluster.waitUntilOk();
      return cluster;
    } catch (err) {
      await Promise.all(nodes.map((node) => node.kill()));
      throw err;
    }
  }

  get ports(): number[] {
    return this.nodes.map((node) => node.port);
  }

  /** Seed node URLs, as redis.cluster takes them. */
  get urls(): string[] {
    return this.ports.map((port) => `redis://127.0.0.1:${port}`);
  }

  /** The `redis:` configuration block that points a vault at this cluster. */
  config(): Record<string, unknown> {
    return { cluster: this.urls };
  }

  /**
   * A client for inspecting what the vault wrote, typed as a single Redis so tests written for
   * one need no change: commands on keys are routed by the cluster; KEYS, SCAN, DBSIZE and
   * FLUSHALL, which would see one node only, span every master (a SCAN cursor names the node).
   */
  client(): Redis {
    const cluster = new Cluster(this.ports.map((port) => ({ host: '127.0.0.1', port })), { scaleReads: 'master' });
    cluster.on('error', () => undefined);
    const masters = async () => {
      await ready(cluster);
      return cluster.nodes('master').sort((a, b) => (a.options.port ?? 0) - (b.options.port ?? 0));
    };
    const spanning: Record<string, unknown> = {
      keys: async (pattern: string) => (await Promise.all((await masters()).map((node) => node.keys(pattern)))).flat(),
      dbsize: async () => (await Promise.all((await masters()).map((node) => node.dbsize()))).reduce((sum, n) => sum + n, 0),
      flushall: async () => {
        await Promise.all((await masters()).map((node) => node.flushall()));
        return 'OK';
      },
      scan: async (cursor: string | number, ...args: (string | number)[]) => {
        const [at, inner] = String(cursor) === '0' ? [0, '0'] : String(cursor).split('-');
        const nodes = await masters();
        const node = nodes[Number(at)];
        if (!node) return ['0', []];
        const [next, keys] = (await node.call('SCAN', inner ?? '0', ...args)) as [string, string[]];
        if (next !== '0') return [`${at}-${next}`, keys];
        return [Number(at) + 1 < nodes.length ? `${Number(at) + 1}-0` : '0', keys];
      },
      monitor: () => Promise.reject(new Error('MONITOR sees one node; use RedisCluster.nodeClient(port).monitor()')),
    };
    return new Proxy(cluster, {
      get: (target, name, receiver) => (typeof name === 'string' && name in spanning ? spanning[name] : Reflect.get(target, name, receiver)),
    }) as unknown as Redis;
  }

  /** A plain connection to one node (MONITOR, CONFIG, CLUSTER commands). */
  nodeClient(port: number): Redis {
    const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    return redis;
  }

  /**
   * A plain connection to each master (every node: the cluster has no replicas), by `host:port`
   * as the cluster announces it, which is how a rewrap job's cursor names it (store/topology.ts).
   */
  masterClients(): Map<string, Redis> {
    return new Map(this.ports.map((port) => [`127.0.0.1:${port}`, this.nodeClient(port)]));
  }

  /** Every node's id by port (CLUSTER MYID). */
  async nodeIds(): Promise<Map<number, string>> {
    return new Map(await Promise.all(this.ports.map(async (port) => [port, await this.onNode(port, (redis) => redis.cluster('MYID') as Promise<string>)] as const)));
  }

  /** Which master port serves each slot, as one node sees it now. */
  async slotOwners(): Promise<(slot: number) => number> {
    const slots = await this.onNode(this.ports[0]!, (redis) => redis.cluster('SLOTS'));
    return (slot) => {
      const port = slots.find(([from, to]) => slot >= from && slot <= to)?.[2]?.[1];
      if (port === undefined) throw new Error(`no node serves slot ${slot}`);
      return port;
    };
  }

  /** SIGKILL of one node: its slots become unreachable (no replica takes over). */
  async killNode(port: number): Promise<void> {
    await this.nodes.find((node) => node.port === port)?.kill();
  }

  /** Starts a killed node again on its port, data and cluster configuration; waits for cluster_state:ok. */
  async restartNode(port: number): Promise<void> {
    const at = this.nodes.findIndex((node) => node.port === port);
    await this.nodes[at]!.kill();
    this.nodes[at] = await RedisProcess.start(port, this.args.get(port)!);
    await this.waitUntilOk();
  }

  /** The port of the master serving `slot`. */
  async ownerOf(slot: number): Promise<number> {
    const owner = await this.ownerOfOn(this.ports[0]!, slot);
    if (owner === null) throw new Error(`no node serves slot ${slot}`);
    return owner;
  }

  /**
   * Moves one slot and its keys to the master on `toPort`, the way `redis-cli --cluster reshard`
   * does: IMPORTING / MIGRATING, MIGRATE of its keys, then SETSLOT NODE on every master.
   */
  async moveSlot(slot: number, toPort: number): Promise<void> {
    const fromPort = await this.ownerOf(slot);
    if (fromPort === toPort) return;
    const ids = await this.nodeIds();
    await this.onNode(toPort, (redis) => redis.cluster('SETSLOT', slot, 'IMPORTING', ids.get(fromPort)!));
    await this.onNode(fromPort, (redis) => redis.cluster('SETSLOT', slot, 'MIGRATING', ids.get(toPort)!));
    await this.onNode(fromPort, async (redis) => {
      for (;;) {
        const keys = (await redis.cluster('GETKEYSINSLOT', slot, 100)) as string[];
        if (keys.length === 0) return;
        await redis.migrate('127.0.0.1', toPort, '', 0, 5000, 'KEYS', ...keys);
      }
    });
    for (const port of [toPort, fromPort, ...this.ports.filter((port) => port !== toPort && port !== fromPort)]) {
      await this.onNode(port, (redis) => redis.cluster('SETSLOT', slot, 'NODE', ids.get(toPort)!));
    }
    await until(async () => (await Promise.all(this.ports.map((port) => this.ownerOfOn(port, slot)))).every((owner) => owner === toPort), `slot ${slot} to move`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async ownerOfOn(port: number, slot: number): Promise<number | null> {
    const slots = await this.onNode(port, (redis) => redis.cluster('SLOTS'));
    return slots.find(([from, to]) => slot >= from && slot <= to)?.[2]?.[1] ?? null;
  }

  /** Every node says cluster_state:ok and knows every other node. */
  private async waitUntilOk(): Promise<void> {
    await until(
      async () =>
        (
          await Promise.all(
            this.ports.map((port) =>
              this.onNode(port, async (redis) => {
                const info = (await redis.cluster('INFO')) as string;
                return info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${this.ports.length}`);
              }),
            ),
          )
        ).every(Boolean),
      'cluster_state:ok on every node',
      20_000,
    );
  }

  private async onNode<T>(port: number, work: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = this.nodeClient(port);
    try {
      return await work(redis);
    } finally {
      redis.disconnect();
    }
  }
}

function redisMajorVersion(): number {
  const version = /v=(\d+)\./.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1];
  return Number(version ?? 0);
}

async function portsWithFreeBus(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const [port] = await freePorts(1);
    if (port! + 10000 <= 65535 && !ports.includes(port!) && (await isFree(port! + 10000))) ports.push(port!);
  }
  return ports;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function ready(cluster: Cluster): Promise<void> {
  for (let i = 0; cluster.status !== 'ready'; i++) {
    if (i > 200) throw new Error('the inspection cluster client did not become ready');
    await sleep(25);
  }
}
