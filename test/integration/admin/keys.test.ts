import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { Keys } from '../../../src/store/keys';
import { callerKeys, startVault, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Two replicas, each reading its own keyring file (as two pods mid-rollout would): a new key
 * is installed everywhere before it becomes the key records are sealed with, and a reload that
 * drops a key records still need is refused.
 */
let redis: RedisServer;
let client: Redis;
let dir: string;
let a: TestVault;
let b: TestVault;
const keys = new Keys('tv:');
const material = { k1: randomBytes(32).toString('base64'), k2: randomBytes(32).toString('base64') };

function writeKeyring(file: string, active: string, ids: (keyof typeof material)[]): void {
  writeFileSync(file, JSON.stringify({ active, keys: Object.fromEntries(ids.map((id) => [id, material[id]])) }));
}

beforeAll(async () => {
  redis = await RedisServer.start();
  client = redis.client();
  dir = mkdtempSync(join(tmpdir(), 'tv-keys-'));
  writeKeyring(join(dir, 'a.json'), 'k1', ['k1']);
  writeKeyring(join(dir, 'b.json'), 'k1', ['k1']);
  const shared = callerKeys();
  const withKeyring = (file: string) => (standard: Record<string, unknown>) => ({ ...standard, keyring: { file: join(dir, file) } });
  a = await startVault({ redis, keys: shared, config: withKeyring('a.json') });
  b = await startVault({ redis, keys: shared, config: withKeyring('b.json') });
});

afterAll(async () => {
  client.disconnect();
  await a.close();
  await b.close();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

const admin = (vault: TestVault) => vault.auth(vault.keys.admin);
const put = (vault: TestVault, user: string) =>
  request(vault.app).put(`/tokens/${user}/github`).set('Authorization', vault.auth(vault.keys.writer)).send({ type: 'oauth2', access_token: `at-${user}` });
const kekOf = (user: string) => client.hget(keys.credential(user, 'github'), 'kek');

test('GET /admin/keys lists each key with its records, whether it is active, and the replicas holding it', async () => {
  expect((await put(a, 'keys-1')).status).toBe(201);
  expect((await put(b, 'keys-2')).status).toBe(201);
  const status = await request(a.app).get('/admin/keys').set('Authorization', admin(a));
  expect(status.status).toBe(200);
  expect(status.body.active).toBe('k1');
  expect(status.body.keys).toEqual([{ id: 'k1', records: 2, active: true, replicas: [expect.any(String), expect.any(String)] }]);
  expect((await request(a.app).get('/admin/keys').set('Authorization', a.auth(a.keys.writer))).status).toBe(403);
});

test('a new key becomes active only once every live replica holds it; then both seal with it and read everything', async () => {
  writeKeyring(join(dir, 'a.json'), 'k2', ['k1', 'k2']);
  const reloaded = await request(a.app).post('/admin/keys/reload').set('Authorization', admin(a));
  expect(reloaded.status).toBe(200);
  // b does not hold k2 yet: k1 stays active, and a keeps sealing with k1.
  expect(reloaded.body.active).toBe('k1');
  expect(reloaded.body.keys.find((key: { id: string }) => key.id === 'k2').replicas).toHaveLength(1);
  expect((await put(a, 'keys-3')).status).toBe(201);
  expect(await kekOf('keys-3')).toBe('k1');

  writeKeyring(join(dir, 'b.json'), 'k2', ['k1', 'k2']);
  expect((await request(b.app).post('/admin/keys/reload').set('Authorization', admin(b))).body.active).toBe('k2');
  await a.deps.keyAdmin.heartbeat(); // a learns the shared active key on its next heartbeat
  expect((await put(a, 'keys-4')).status).toBe(201);
  expect((await put(b, 'keys-5')).status).toBe(201);
  expect([await kekOf('keys-4'), await kekOf('keys-5')]).toEqual(['k2', 'k2']);
  for (const vault of [a, b]) {
    for (const user of ['keys-1', 'keys-2', 'keys-3', 'keys-4', 'keys-5']) {
      expect((await request(vault.app).get(`/tokens/${user}/github`).set('Authorization', vault.auth(vault.keys.reader))).status).toBe(200);
    }
  }
  const status = await request(b.app).get('/admin/keys').set('Authorization', admin(b));
  expect(status.body.keys.map((key: { id: string; records: number; active: boolean }) => [key.id, key.records, key.active])).toEqual([
    ['k1', 3, false],
    ['k2', 2, true],
  ]);
});

test('a reload that drops a key records still need is refused with 409 and the counts; the old keyring stays in force', async () => {
  writeKeyring(join(dir, 'a.json'), 'k2', ['k2']);
  const refused = await request(a.app).post('/admin/keys/reload').set('Authorization', admin(a));
  expect(refused.status).toBe(409);
  expect(refused.body.error.code).toBe('key_in_use');
  expect(refused.body.error.details).toEqual([{ path: 'k1', message: '3 records are sealed under it' }]);
  expect(refused.body.error.message).not.toContain(material.k1);
  expect((await request(a.app).get('/tokens/keys-1/github').set('Authorization', a.auth(a.keys.reader))).status).toBe(200);
  expect(a.deps.keyring.get()?.has('k1')).toBe(true);
});

test('a keyring file that does not parse is refused with 400 and changes nothing', async () => {
  writeFileSync(join(dir, 'a.json'), '{"active":"k2","keys":{"k1":');
  const refused = await request(a.app).post('/admin/keys/reload').set('Authorization', admin(a));
  expect(refused.status).toBe(400);
  expect(refused.body.error.code).toBe('invalid_request');
  expect(a.deps.keyring.get()?.ids().sort()).toEqual(['k1', 'k2']);
});

test('recount repairs per-key and per-state counters that drifted', async () => {
  const shard = keys.kekCounts('keys-1');
  await client.hset(shard, 'k1', 99);
  await client.hset(keys.states('keys-1'), 'active', 42);
  const recount = await request(a.app).post('/admin/keys/recount').set('Authorization', admin(a));
  expect(recount.status).toBe(200);
  expect(recount.body.busy).toEqual([]);
  expect(recount.body.keys.map((key: { id: string; records: number }) => [key.id, key.records])).toEqual([
    ['k1', 3],
    ['k2', 2],
  ]);
  expect(await a.deps.store.stateCounts()).toEqual({ active: 5 });
});

test('a replica starting with a stale keyring does not move the active key back; only an explicit reload does', async () => {
  writeKeyring(join(dir, 'c.json'), 'k1', ['k1', 'k2']); // holds both, but still names k1 active
  const c = await startVault({ redis, keys: a.keys, keyringJson: a.keyringJson, config: (standard) => ({ ...standard, keyring: { file: join(dir, 'c.json') } }) });
  try {
    await c.deps.keyAdmin.heartbeat();
    expect(await client.get(keys.activeKek())).toBe('k2');
    expect((await request(c.app).put('/tokens/keys-6/github').set('Authorization', c.auth(c.keys.writer)).send({ type: 'oauth2', access_token: 'at-keys-6' })).status).toBe(201);
    expect(await kekOf('keys-6')).toBe('k2');

    const reload = await request(c.app).post('/admin/keys/reload').set('Authorization', admin(c));
    expect(reload.status).toBe(200);
    expect(reload.body.active).toBe('k1');
  } finally {
    await c.close();
  }
});
