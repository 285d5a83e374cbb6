import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, RedisServer } from '../../helpers/redis-server';
import { buildVault, http, parseJson, tryConnect, VaultProcess, vaultEnv, type BuiltVault, type HttpResult } from '../../helpers/vault-process';

/**
 * The compiled server (`node dist/main.js`) in production mode, as its own OS process:
 * NODE_ENV=production, the configuration in a YAML file named by TOKEN_VAULT_CONFIG, the keyring
 * from a { file } and the caller key and client secret from { env }.
 */

let built: BuiltVault;
let redis: RedisServer;
let work: string;
let keyringPath: string;
const keyMaterial = randomBytes(32).toString('base64');
const apiKey = `tv_prod_${randomBytes(16).toString('hex')}`;
const clientSecret = `gh-secret-${randomBytes(12).toString('hex')}`;
const spawned: VaultProcess[] = [];

beforeAll(async () => {
  [built, redis] = await Promise.all([buildVault(), RedisServer.start()]);
  work = mkdtempSync(join(tmpdir(), 'tv-prod-'));
  keyringPath = join(work, 'keyring.json');
  writeFileSync(keyringPath, JSON.stringify({ active: 'prod-1', keys: { 'prod-1': keyMaterial } }), { mode: 0o600 });
}, 60_000);

afterAll(async () => {
  await Promise.all(spawned.map((vault) => vault.kill()));
  await redis?.stop();
  built?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

type Config = Record<string, unknown> & { providers: { github: Record<string, unknown> } };

/** A complete production configuration; tests take parts away or break one field. */
function productionConfig(): Config {
  return {
    redis: { url: { env: 'REDIS_URL' } },
    keyring: { file: keyringPath },
    callers: [{ name: 'backend', key: { env: 'BACKEND_API_KEY' }, scopes: ['tokens:read', 'tokens:write'], providers: ['*'] }],
    providers: {
      github: {
        type: 'oauth2',
        clientId: 'gh-client',
        clientSecret: { env: 'GITHUB_CLIENT_SECRET' },
        clientAuth: 'client_secret_post',
        tokenUrl: 'https://github.com/login/oauth/access_token',
      },
    },
  };
}

function without(config: Config, field: string): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...config };
  delete copy[field];
  return copy;
}

let configs = 0;
/** Writes the YAML and spawns `node <built>/main.js` with NODE_ENV=production; does not wait. */
async function startProduction(config: Record<string, unknown>, env: Record<string, string> = {}): Promise<{ vault: VaultProcess; port: number }> {
  const file = join(work, `config-${++configs}.yaml`);
  writeFileSync(file, stringify(config));
  const port = await freePort();
  const vault = VaultProcess.startBuilt(built, {
    cwd: work,
    env: vaultEnv({
      NODE_ENV: 'production',
      TOKEN_VAULT_CONFIG: file,
      PORT: String(port),
      REDIS_URL: redis.url,
      BACKEND_API_KEY: apiKey,
      GITHUB_CLIENT_SECRET: clientSecret,
      LOG_LEVEL: 'info',
      ...env,
    }),
  });
  spawned.push(vault);
  return { vault, port };
}

const auth = { authorization: `Bearer ${apiKey}` };

/** SIGTERM, then the exit. */
async function stop(vault: VaultProcess) {
  vault.signal('SIGTERM');
  return vault.waitForExit(10_000);
}

describe('a production vault with a keyring, callers and a persistent Redis', () => {
  let vault: VaultProcess;
  let port: number;
  beforeAll(async () => {
    ({ vault, port } = await startProduction(productionConfig()));
    await vault.waitForListening();
  });

  test('listens on 0.0.0.0 by default, starts without warnings and reports ready', async () => {
    const listening = await vault.waitForListening();
    expect(listening).toMatchObject({ level: 30, host: '0.0.0.0', port });
    expect(listening.msg).toBe(`token-vault listening on http://0.0.0.0:${port}`);
    expect(vault.warnings()).toEqual([]);

    const ready = await http(port, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ok' });
  });

  test('PUT stores a credential (201, no secrets in the answer) and GET hands the access token back (200)', async () => {
    const put = await http(port, 'PUT', '/tokens/u1/github', {
      headers: auth,
      body: { type: 'oauth2', access_token: 'at-u1-github', refresh_token: 'rt-u1-github', expires_in: 3600, scope: 'repo' },
    });
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({ user: 'u1', provider: 'github', type: 'oauth2', version: expect.any(Number) });
    expect(put.text).not.toContain('at-u1-github');
    expect(put.text).not.toContain('rt-u1-github');

    const get = await http(port, 'GET', '/tokens/u1/github', { headers: auth });
    expect(get.status).toBe(200);
    expect(get.headers['cache-control']).toBe('no-store');
    expect(get.body).toMatchObject({
      user: 'u1',
      provider: 'github',
      type: 'oauth2',
      access_token: 'at-u1-github',
      scope: 'repo',
      version: (put.body as { version: number }).version,
    });
    expect(get.body).not.toHaveProperty('refresh_token');
    expect(get.text).not.toContain('rt-u1-github');

    const replaced = await http(port, 'PUT', '/tokens/u1/github', { headers: auth, body: { type: 'oauth2', access_token: 'at-u1-github-2' } });
    expect(replaced.status).toBe(200);
  });

  test('answers 401 to a request without a caller key', async () => {
    const res = await http(port, 'GET', '/tokens/u1/github');
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error: { code: 'unauthorized' } });
  });

  test('on SIGTERM finishes the in-flight keep-alive request, refuses new connections, logs "stopped" and exits 0 without waiting out the grace period', async () => {
    const body = JSON.stringify({ type: 'oauth2', access_token: 'at-in-flight', expires_in: 3600 });
    const half = Math.floor(body.length / 2);
    // Expect: 100-continue makes the server answer as soon as it has parsed the headers: from
    // then on the request is in flight in the vault, waiting for the rest of its body.
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: '/tokens/u-in-flight/github',
      // A keep-alive connection: once its response is written it is idle, and must not hold
      // the shutdown until the 10 s grace period forces it closed.
      agent: new Agent({ keepAlive: true }),
      headers: { ...auth, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), expect: '100-continue' },
    });
    const response = new Promise<HttpResult>((resolve, reject) => {
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parseJson(text) }));
      });
    });
    const continued = new Promise((resolve) => req.once('continue', resolve));
    req.flushHeaders();
    await continued;
    req.write(body.slice(0, half));

    vault.signal('SIGTERM');
    await vault.waitForLog('shutting down');
    expect(await tryConnect(port)).toBe('ECONNREFUSED');
    expect(vault.running).toBe(true); // held open by the unfinished request

    req.end(body.slice(half));
    const res = await response;
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ user: 'u-in-flight', provider: 'github', version: expect.any(Number) });

    expect(await vault.waitForExit(5_000)).toEqual({ code: 0, signal: null });
    expect(vault.logs().map((line) => line.msg)).toContain('stopped');

    // The request's write reached Redis before the vault closed its connection.
    const client = redis.client();
    try {
      expect(await client.keys('tv:*:cred:u-in-flight:github')).toHaveLength(1);
    } finally {
      client.disconnect();
    }
  });
});

test('never writes a token, caller key, client secret or key material to stdout or stderr, even at LOG_LEVEL=trace', async () => {
  const accessToken = `at-secret-${randomBytes(12).toString('hex')}`;
  const refreshToken = `rt-secret-${randomBytes(12).toString('hex')}`;
  const { vault, port } = await startProduction(productionConfig(), { LOG_LEVEL: 'trace' });
  await vault.waitForListening();

  const put = await http(port, 'PUT', '/tokens/u-secrets/github', {
    headers: { ...auth, 'x-request-id': 'secrets-put' },
    body: { type: 'oauth2', access_token: accessToken, refresh_token: refreshToken, expires_in: 3600 },
  });
  expect(put.status).toBe(201);
  const get = await http(port, 'GET', '/tokens/u-secrets/github', { headers: auth });
  expect(get.body).toMatchObject({ access_token: accessToken });
  // A body that does not parse: the parser's error carries the raw body.
  const broken = await http(port, 'PUT', '/tokens/u-secrets/github', {
    headers: auth,
    body: `{"type":"oauth2","access_token":"${accessToken}","refresh_token":"${refreshToken}"`,
  });
  expect(broken.status).toBe(400);
  expect((await http(port, 'GET', '/tokens/u-secrets/github', { headers: { authorization: `Bearer ${apiKey}-wrong` } })).status).toBe(401);
  expect((await http(port, 'GET', '/tokens/u-secrets', { headers: auth })).status).toBe(200);
  expect((await http(port, 'DELETE', '/tokens/u-secrets/github', { headers: auth })).status).toBe(204);
  expect(await stop(vault)).toEqual({ code: 0, signal: null });

  const output = vault.output();
  // The run did log its requests and audit entries: the check below looked at real output.
  expect(output).toContain('secrets-put');
  expect(vault.logs().some((line) => line.audit === true)).toBe(true);
  for (const [name, secret] of Object.entries({ accessToken, refreshToken, apiKey, clientSecret, keyMaterial })) {
    expect({ name, found: output.includes(secret) }).toEqual({ name, found: false });
  }
});

describe('refuses to start in production', () => {
  async function refused(config: Record<string, unknown>, env: Record<string, string> = {}) {
    const { vault } = await startProduction(config, env);
    const exit = await vault.waitForExit(10_000);
    expect(vault.output()).not.toContain('token-vault listening');
    return { exit, vault };
  }

  test('without a keyring: exits 1 with a message naming the keyring', async () => {
    const { exit, vault } = await refused(without(productionConfig(), 'keyring'));
    expect(exit.code).toBe(1);
    expect(vault.stderr).toMatch(/^ {2}- keyring: production mode needs a keyring/m);
  });

  test('without callers: exits 1 with a message naming callers', async () => {
    const { exit, vault } = await refused(without(productionConfig(), 'callers'));
    expect(exit.code).toBe(1);
    expect(vault.stderr).toMatch(/^ {2}- callers: production mode needs at least one caller/m);
  });

  test('with a field that does not validate: exits 1 naming providers.github.tokenUrl', async () => {
    const config = productionConfig();
    config.providers.github.tokenUrl = 'not a url';
    const { exit, vault } = await refused(config);
    expect(exit.code).toBe(1);
    expect(vault.stderr).toContain('invalid configuration');
    expect(vault.stderr).toMatch(/^ {2}- providers\.github\.tokenUrl: /m);
  });

  test('with an http:// tokenUrl on a host that is not loopback: exits 1 naming the field', async () => {
    const config = productionConfig();
    config.providers.github.tokenUrl = 'http://oauth.example.com/token';
    const { exit, vault } = await refused(config);
    expect(exit.code).toBe(1);
    expect(vault.stderr).toMatch(/^ {2}- providers\.github\.tokenUrl: http:\/\/ is only allowed for loopback hosts/m);
  });

  test('when Redis is unreachable: exits 1 within 10 s with a fatal log saying so', async () => {
    const closedPort = await freePort();
    const started = Date.now();
    const { exit, vault } = await refused(productionConfig(), { REDIS_URL: `redis://127.0.0.1:${closedPort}` });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(exit.code).toBe(1);
    const fatal = vault.logs().find((line) => line.level === 60);
    expect(fatal?.msg).toMatch(/Redis is not reachable/);
  });
});

describe('warns but starts in production', () => {
  afterEach(async () => {
    await Promise.all(spawned.map((vault) => vault.kill()));
  });

  async function startsWithWarnings(config: Record<string, unknown>, redisUrl = redis.url) {
    const { vault, port } = await startProduction(config, { REDIS_URL: redisUrl });
    await vault.waitForListening();
    expect((await http(port, 'GET', '/readyz')).status).toBe(200);
    return vault;
  }

  test('on inline secrets: a warning names their field paths, never their values', async () => {
    const inlineKey = `tv_inline_${randomBytes(12).toString('hex')}`;
    const inlineClientSecret = `inline-client-secret-${randomBytes(8).toString('hex')}`;
    const config = productionConfig();
    config.callers = [{ name: 'backend', key: inlineKey, scopes: ['tokens:read'], providers: ['*'] }];
    config.providers.github.clientSecret = inlineClientSecret;
    const vault = await startsWithWarnings(config);

    const warning = vault.warnings().find((line) => line.msg.includes('inline secrets'));
    expect(warning).toBeDefined();
    const paths = (warning?.msg ?? '').slice((warning?.msg ?? '').lastIndexOf(': ') + 2).split(', ');
    expect(paths.sort()).toEqual(['callers[0].keys[0]', 'providers.github.clientSecret[0]']);
    expect(vault.output()).not.toContain(inlineKey);
    expect(vault.output()).not.toContain(inlineClientSecret);
  });

  test('on a Redis without AOF persistence (appendonly no)', async () => {
    const volatile = await RedisServer.start(['--appendonly', 'no']);
    try {
      const vault = await startsWithWarnings(productionConfig(), volatile.url);
      const messages = vault.warnings().map((line) => line.msg);
      expect(messages).toEqual([expect.stringContaining('Redis has no AOF persistence (appendonly no)')]);
    } finally {
      await volatile.stop();
    }
  });

  test('on a Redis whose maxmemory-policy evicts (allkeys-lru)', async () => {
    const evicting = await RedisServer.start(['--maxmemory-policy', 'allkeys-lru']);
    try {
      const vault = await startsWithWarnings(productionConfig(), evicting.url);
      const messages = vault.warnings().map((line) => line.msg);
      expect(messages).toEqual([expect.stringMatching(/maxmemory-policy is allkeys-lru: eviction deletes credentials/)]);
    } finally {
      await evicting.stop();
    }
  });
});
