import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisCluster } from './redis-cluster';
import { freePort, RedisProcess } from './redis-process';

export { freePort };

/**
 * Where a test vault keeps its data: one redis-server, a Redis Cluster or a Sentinel group.
 * startVault takes any of them.
 */
export interface RedisTarget {
  readonly kind: 'single' | 'cluster' | 'sentinel';
  /** The `redis:` configuration block (url, cluster or sentinel) that points a vault at it. */
  config(): Record<string, unknown>;
  /** A client for inspecting what the vault wrote; it sees every key, on every node. */
  client(): Redis;
  stop(): Promise<void>;
}

/**
 * A real redis-server on a random loopback port with its own data directory, AOF with fsync on
 * every write (so a kill loses nothing that was acknowledged). Tests can kill it and start it
 * again on the same port and data.
 *
 * With TV_REDIS=cluster (npm run test:cluster), start() hands out a three-master Redis Cluster
 * behind the same interface instead: `url` names one of its nodes (the vault takes a url that
 * answers as a cluster node as the cluster's seed), `client()` spans every master,
 * `masterClients()` connects to each one, `dir` holds every node's data. Killing and restarting
 * it are not supported: the cluster run leaves out the test files that do (jest.cluster.config.js).
 */
export class RedisServer implements RedisTarget {
  readonly kind: RedisTarget['kind'] = 'single';
  private running: RedisProcess | undefined;

  protected constructor(
    readonly port: number,
    readonly dir: string,
    private readonly extraArgs: string[],
  ) {}

  static async start(extraArgs: string[] = []): Promise<RedisServer> {
    if (process.env.TV_REDIS === 'cluster') {
      if (extraArgs.length > 0) throw new Error(`TV_REDIS=cluster: the cluster target takes no redis-server arguments (${extraArgs.join(' ')})`);
      return ClusterAsServer.startCluster();
    }
    const dir = mkdtempSync(join(tmpdir(), 'tv-redis-'));
    for (let attempt = 0; ; attempt++) {
      const server = new RedisServer(await freePort(), dir, extraArgs);
      try {
        await server.boot();
        return server;
      } catch (err) {
        if (attempt >= 4) throw err;
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  config(): Record<string, unknown> {
    return { url: this.url };
  }

  /** A plain client for inspecting what the vault wrote. */
  client(): Redis {
    return new Redis(this.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  }

  /**
   * A plain connection to each master, by `host:port`, for what sees one node only (MONITOR):
   * here the one server; on the cluster target, each of its masters.
   */
  masterClients(): Map<string, Redis> {
    return new Map([[`127.0.0.1:${this.port}`, this.client()]]);
  }

  /** SIGKILL: the server dies without a chance to do anything. */
  async kill(): Promise<void> {
    await this.running?.kill();
  }

  /** Starts again on the same port and data directory. */
  async restart(): Promise<void> {
    await this.kill();
    await this.boot();
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async boot(): Promise<void> {
    this.running = await RedisProcess.start(this.port, [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--dir', this.dir,
      '--appendonly', 'yes',
      '--appendfsync', 'always',
      '--save', '',
      ...this.extraArgs,
    ]);
  }
}

/** The cluster target of TV_REDIS=cluster, shaped as a RedisServer for the tests written for one. */
class ClusterAsServer extends RedisServer {
  override readonly kind = 'cluster';

  private constructor(private readonly cluster: RedisCluster) {
    super(cluster.ports[0]!, cluster.dir, []);
  }

  static async startCluster(): Promise<RedisServer> {
    return new ClusterAsServer(await RedisCluster.start());
  }

  override config(): Record<string, unknown> {
    return this.cluster.config();
  }

  override client(): Redis {
    return this.cluster.client();
  }

  override masterClients(): Map<string, Redis> {
    return this.cluster.masterClients();
  }

  override async kill(): Promise<void> {
    throw new Error('TV_REDIS=cluster: killing Redis is not supported against the cluster target');
  }

  override async restart(): Promise<void> {
    throw new Error('TV_REDIS=cluster: restarting Redis is not supported against the cluster target');
  }

  override async stop(): Promise<void> {
    await this.cluster.stop();
  }
}
