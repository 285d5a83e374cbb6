import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, RedisServer } from '../../helpers/redis-server';
import { http, REPO_ROOT, tryConnect, VaultProcess, vaultEnv, type LogLine } from '../../helpers/vault-process';

/**
 * `npm run dev` as its own OS process: the TypeScript source run with tsx, no NODE_ENV, in a
 * fresh directory holding only a copy of token-vault.example.yaml (DESIGN §2: no setup).
 */

const spawned: VaultProcess[] = [];
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(spawned.map((vault) => vault.kill()));
  // A vault killed by a failed test leaves its detached redis-server behind: stop it here.
  for (const dir of dirs) {
    const portFile = join(dir, '.data', 'redis', 'port');
    const port = existsSync(portFile) ? Number(readFileSync(portFile, 'utf8')) : undefined;
    if (port && (await tryConnect(port)) === 'open') await shutdownRedis(port);
    rmSync(dir, { recursive: true, force: true });
  }
});

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tv-dev-'));
  dirs.push(dir);
  copyFileSync(join(REPO_ROOT, 'token-vault.example.yaml'), join(dir, 'token-vault.example.yaml'));
  return dir;
}

async function startDev(dir: string, redisUrl: string): Promise<{ vault: VaultProcess; port: number }> {
  const port = await freePort();
  const vault = VaultProcess.startDev({ cwd: dir, env: vaultEnv({ REDIS_URL: redisUrl, PORT: String(port) }) });
  spawned.push(vault);
  await vault.waitForListening(30_000);
  return { vault, port };
}

function redisOn(port: number): Redis {
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  return client;
}

async function shutdownRedis(port: number): Promise<void> {
  const client = redisOn(port);
  try {
    await client.connect();
    await client.shutdown('NOSAVE');
  } catch {
    // already gone, or SHUTDOWN closed the connection instead of answering
  } finally {
    client.disconnect();
  }
}

async function allKeys(port: number): Promise<string[]> {
  const client = redisOn(port);
  try {
    await client.connect();
    return (await client.keys('*')).sort();
  } finally {
    client.disconnect();
  }
}

function occurrences(text: string, part: string): number {
  return text.split(part).length - 1;
}

function devKeyId(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, '.data', 'keyring.json'), 'utf8')) as { active: string }).active;
}

describe('dev mode in a fresh directory with no Redis at REDIS_URL, run twice', () => {
  let dir: string;
  let closedRedisUrl: string;
  let first: VaultProcess;
  let port: number;
  let adminKey: string;
  let keyringText: string;
  let devRedisPort: number;

  const dataDir = () => join(dir, '.data');
  const auth = () => ({ authorization: `Bearer ${adminKey}` });

  beforeAll(async () => {
    dir = freshDir();
    closedRedisUrl = `redis://127.0.0.1:${await freePort()}`;
    ({ vault: first, port } = await startDev(dir, closedRedisUrl));
    adminKey = readFileSync(join(dataDir(), 'dev-admin-key'), 'utf8').trim();
    keyringText = readFileSync(join(dataDir(), 'keyring.json'), 'utf8');
    devRedisPort = Number(readFileSync(join(dataDir(), 'redis', 'port'), 'utf8'));
  }, 40_000);

  test('generates .data/keyring.json (valid keyring JSON, mode 0600) and warns naming the keyring', () => {
    const path = join(dataDir(), 'keyring.json');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const ring = JSON.parse(keyringText) as { active: string; keys: Record<string, string> };
    expect(ring.active).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
    expect(Object.keys(ring.keys)).toEqual([ring.active]);
    expect(Buffer.from(ring.keys[ring.active] ?? '', 'base64')).toHaveLength(32);

    const warning = first.warnings().find((line) => line.keyring !== undefined);
    expect(warning).toMatchObject({ keyring: path });
    expect(warning?.msg).toContain(path);
  });

  test('generates an admin API key in .data/dev-admin-key and prints it once on stderr, never in the logs', () => {
    expect(statSync(join(dataDir(), 'dev-admin-key')).mode & 0o777).toBe(0o600);
    expect(adminKey).toMatch(/^tv_dev_[A-Za-z0-9_-]{20,}$/);
    expect(occurrences(first.stderr, adminKey)).toBe(1);
    expect(first.stdout).not.toContain(adminKey);
  });

  test('starts its own redis-server with AOF on and its data under .data/redis', async () => {
    const redisDir = join(dataDir(), 'redis');
    const started = first.warnings().find((line) => line.msg.includes('started redis-server'));
    expect(started).toMatchObject({ dir: redisDir, port: devRedisPort });
    expect(devRedisPort).not.toBe(Number(new URL(closedRedisUrl).port));

    const client = redisOn(devRedisPort);
    try {
      await client.connect();
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client.config('GET', 'dir')).toEqual(['dir', redisDir]);
    } finally {
      client.disconnect();
    }
  });

  test('serves PUT and GET with the printed admin key, and the write reaches the AOF under .data/redis', async () => {
    const put = await http(port, 'PUT', '/tokens/dev-user/github', {
      headers: auth(),
      body: { type: 'oauth2', access_token: 'at-dev-user', refresh_token: 'rt-dev-user', expires_in: 7200 },
    });
    expect(put.status).toBe(201);
    const get = await http(port, 'GET', '/tokens/dev-user/github', { headers: auth() });
    expect(get.status).toBe(200);
    expect(get.body).toMatchObject({ user: 'dev-user', provider: 'github', access_token: 'at-dev-user' });

    const aofDir = join(dataDir(), 'redis', 'appendonlydir');
    const aofText = () =>
      readdirSync(aofDir)
        .filter((name) => name.endsWith('.aof'))
        .map((name) => readFileSync(join(aofDir, name), 'latin1'))
        .join('');
    // appendfsync everysec: the write reaches the file within a second or so.
    for (let i = 0; i < 40 && !aofText().includes('cred:dev-user:github'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(aofText()).toContain('cred:dev-user:github');
  });

  test('keeps its records under the key prefix tv:<dev key id>:', async () => {
    const prefix = `tv:${devKeyId(dir)}:`;
    const keys = await allKeys(devRedisPort);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.filter((key) => !key.startsWith(prefix))).toEqual([]);
    expect(keys).toContainEqual(expect.stringMatching(new RegExp(`^${prefix}\\{s\\d+\\}:cred:dev-user:github$`)));
  });

  test('on SIGTERM exits 0 and stops the redis-server it started', async () => {
    expect(await tryConnect(devRedisPort)).toBe('open');
    first.signal('SIGTERM');
    expect(await first.waitForExit(15_000)).toEqual({ code: 0, signal: null });
    expect(first.logs().map((line) => line.msg)).toContain('stopped');
    expect(await tryConnect(devRedisPort)).toBe('ECONNREFUSED');
  });

  test("a second run reuses the keyring and the admin key (not printed again) and reads the first run's credential", async () => {
    if (first.running) {
      first.signal('SIGTERM');
      await first.waitForExit(15_000);
    }
    const { vault: second, port: secondPort } = await startDev(dir, closedRedisUrl);
    try {
      expect(readFileSync(join(dataDir(), 'keyring.json'), 'utf8')).toBe(keyringText);
      expect(readFileSync(join(dataDir(), 'dev-admin-key'), 'utf8').trim()).toBe(adminKey);
      expect(second.output()).not.toContain(adminKey);
      expect(second.warnings().find((line) => line.keyring !== undefined)?.keyPrefix).toBe(`tv:${devKeyId(dir)}:`);

      // Its own redis-server again, on the same AOF files.
      const started = second.warnings().find((line: LogLine) => line.msg.includes('started redis-server'));
      expect(started).toMatchObject({ dir: join(dataDir(), 'redis') });

      const get = await http(secondPort, 'GET', '/tokens/dev-user/github', { headers: auth() });
      expect(get.status).toBe(200);
      expect(get.body).toMatchObject({ access_token: 'at-dev-user' });
    } finally {
      second.signal('SIGTERM');
      expect(await second.waitForExit(15_000)).toEqual({ code: 0, signal: null });
    }
  });
});

test('dev mode with a live Redis at REDIS_URL uses that Redis and starts no redis-server of its own', async () => {
  const live = await RedisServer.start();
  try {
    const dir = freshDir();
    const { vault, port } = await startDev(dir, live.url);
    expect(existsSync(join(dir, '.data', 'redis'))).toBe(false);
    expect(vault.output()).not.toContain('started redis-server');

    const adminKey = readFileSync(join(dir, '.data', 'dev-admin-key'), 'utf8').trim();
    const put = await http(port, 'PUT', '/tokens/live-user/github', {
      headers: { authorization: `Bearer ${adminKey}` },
      body: { type: 'oauth2', access_token: 'at-live-user', expires_in: 3600 },
    });
    expect(put.status).toBe(201);
    const prefix = `tv:${devKeyId(dir)}:`;
    expect(await allKeys(live.port)).toContainEqual(expect.stringMatching(new RegExp(`^${prefix}\\{s\\d+\\}:cred:live-user:github$`)));

    vault.signal('SIGTERM');
    expect(await vault.waitForExit(15_000)).toEqual({ code: 0, signal: null });
    // A Redis it did not start is left running.
    expect(await tryConnect(live.port)).toBe('open');
  } finally {
    await live.stop();
  }
}, 40_000);
