import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load';
import { SCOPES } from '../config/schema';
import { Keyring } from '../crypto/keyring';
import { DEFAULT_REDIS_URL } from '../deps';

/**
 * Zero-setup development (DESIGN §2): a keyring generated under ./.data (reused next time), a
 * key prefix derived from it, an admin API key when no callers are configured, and a
 * redis-server of our own when none answers. Each fill-in is announced loudly. Never used when
 * NODE_ENV=production.
 */
export interface DevSetup {
  loaded: LoadedConfig;
  keyring: Keyring;
  keyPrefix: string | undefined;
  /** The Redis to use instead of the configured one; undefined for a configured cluster or sentinels, used as they are. */
  redisUrl: string | undefined;
  /** Stops the redis-server dev mode started, if any. */
  stop(): Promise<void>;
}

export async function prepareDev(loaded: LoadedConfig, cwd: string, logger: Logger): Promise<DevSetup> {
  const dataDir = resolve(cwd, '.data');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  let keyring = loaded.keyring;
  let keyPrefix: string | undefined;
  if (!keyring) {
    const path = resolve(dataDir, 'keyring.json');
    if (!existsSync(path)) {
      writeFileSync(path, Keyring.generateJson(`dev-${randomBytes(4).toString('hex')}`), { mode: 0o600 });
    }
    keyring = Keyring.parse(readFileSync(path, 'utf8'));
    // A fresh checkout on a shared Redis never meets records sealed under another dev keyring.
    keyPrefix = `${loaded.config.redis.keyPrefix}${keyring.activeId}:`;
    logger.warn(
      { keyring: path, keyPrefix },
      `DEV MODE: no keyring configured; using the generated dev keyring ${path} (key ${keyring.activeId}). Never use it in production.`,
    );
  }

  let config = loaded.config;
  if (config.callers.length === 0) {
    const path = resolve(dataDir, 'dev-admin-key');
    let key: string;
    if (existsSync(path)) {
      key = readFileSync(path, 'utf8').trim();
      logger.warn({ keyFile: path }, 'DEV MODE: no callers configured; the dev admin API key is in the key file');
    } else {
      key = `tv_dev_${randomBytes(24).toString('base64url')}`;
      writeFileSync(path, key + '\n', { mode: 0o600 });
      logger.warn({ keyFile: path }, 'DEV MODE: no callers configured; generated a dev admin API key with every scope');
      // Printed once, on the terminal only, never through the logger.
      process.stderr.write(`\n  Dev admin API key (also in ${path}):\n\n    ${key}\n\n`);
    }
    const sha256 = createHash('sha256').update(key).digest();
    config = { ...config, callers: [{ name: 'dev-admin', keys: [{ sha256, origin: 'file' }], scopes: [...SCOPES], providers: ['*'] }] };
  }

  const configured = config.redis.url?.reveal() ?? DEFAULT_REDIS_URL;
  let redisUrl: string | undefined = configured;
  let stop: () => Promise<void> = async () => undefined;
  // A configured cluster or sentinel group is the developer's choice: never replaced by a server of our own.
  if (config.redis.cluster || config.redis.sentinel) {
    redisUrl = undefined;
  } else if (!(await answers(configured))) {
    const started = await startRedis(resolve(dataDir, 'redis'), logger);
    redisUrl = started.url;
    stop = started.stop;
  }
  const keyringSource = loaded.keyring ? loaded.keyringSource : { kind: 'file' as const, path: resolve(dataDir, 'keyring.json') };
  return { loaded: { ...loaded, config, keyring, keyringSource }, keyring, keyPrefix, redisUrl, stop };
}

async function answers(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
    return true;
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/**
 * Starts redis-server with AOF under `dir`. If a previous run crashed and left its server
 * running, that server (found through the port file, serving the same directory) is adopted
 * rather than a second one started on the same files.
 */
async function startRedis(dir: string, logger: Logger): Promise<{ url: string; stop: () => Promise<void> }> {
  if (spawnSync('redis-server', ['--version']).error) {
    throw new Error('no Redis answers at the configured URL and redis-server is not on PATH; install Redis or set REDIS_URL');
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const portFile = resolve(dir, 'port');
  const previous = existsSync(portFile) ? Number(readFileSync(portFile, 'utf8')) : undefined;
  if (previous && (await servesDir(previous, dir))) {
    logger.warn({ dir, port: previous }, 'DEV MODE: reusing the redis-server a previous run left running');
    return { url: `redis://127.0.0.1:${previous}`, stop: () => shutdownRedis(previous) };
  }
  const port = await freePort();
  // detached: a Ctrl-C in the terminal reaches the vault, which then stops Redis after the
  // in-flight requests are done, instead of Redis dying first.
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--logfile', 'redis.log'],
    { stdio: 'ignore', detached: true },
  );
  writeFileSync(portFile, String(port));
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await answers(url)); i++) await new Promise((r) => setTimeout(r, 100));
  logger.warn({ dir, port, pid: child.pid }, `DEV MODE: no Redis answered at the configured URL; started redis-server with AOF, data under ${dir}`);
  return {
    url,
    stop: async () => {
      await shutdownRedis(port);
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    },
  };
}

async function servesDir(port: number, dir: string): Promise<boolean> {
  const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const [, served] = (await redis.config('GET', 'dir')) as [string, string];
    return served === dir;
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

async function shutdownRedis(port: number): Promise<void> {
  const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.shutdown();
  } catch {
    // SHUTDOWN closes the connection instead of answering; a server already gone is fine too.
  } finally {
    redis.disconnect();
  }
}

/** A TCP port that was free a moment ago on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
