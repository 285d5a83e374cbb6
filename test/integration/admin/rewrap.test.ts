import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { decodeEnvelope } from '../../../src/crypto/envelope';
import { Keys } from '../../../src/store/keys';
import { startVault, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Rotation end to end on one replica: a new key is activated, the rewrap job moves every record
 * to it while callers keep reading and writing, each record's IV and ciphertext stay
 * byte-identical, and the old key can then be retired.
 */
let redis: RedisServer;
let client: Redis;
let dir: string;
let vault: TestVault;
const keys = new Keys('tv:');
const material = { k1: randomBytes(32).toString('base64'), k2: randomBytes(32).toString('base64') };
const USERS = 400;

function writeKeyring(active: string, ids: (keyof typeof material)[]): void {
  writeFileSync(join(dir, 'keyring.json'), JSON.stringify({ active, keys: Object.fromEntries(ids.map((id) => [id, material[id]])) }));
}

beforeAll(async () => {
  redis = await RedisServer.start();
  client = redis.client();
  dir = mkdtempSync(join(tmpdir(), 'tv-rewrap-'));
  writeKeyring('k1', ['k1']);
  vault = await startVault({ redis, config: (standard) => ({ ...standard, keyring: { file: join(dir, 'keyring.json') }, rewrap: { recordsPerSecond: 500 } }) });
  const writer = vault.auth(vault.keys.writer);
  for (let i = 0; i < USERS; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, j) =>
        request(vault.app).put(`/tokens/rw-${i + j}/github`).set('Authorization', writer).send({ type: 'oauth2', access_token: `at-${i + j}-0` }),
      ),
    );
  }
});

afterAll(async () => {
  client.disconnect();
  await vault.close();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

const admin = () => vault.auth(vault.keys.admin);
const sealedPart = async (user: string) => {
  const blob = (await client.hgetBuffer(keys.credential(user, 'github'), 'blob'))!;
  const parts = decodeEnvelope(blob);
  return { kek: parts.kekId, body: Buffer.concat([parts.iv, parts.ciphertext, parts.tag]).toString('hex') };
};

test('rewrap under live traffic: every read succeeds, no write is lost, IV and ciphertext unchanged, then k1 can be retired', async () => {
  const before = await Promise.all(Array.from({ length: 20 }, (_, i) => sealedPart(`rw-${i * 7}`)));
  expect(before.every((p) => p.kek === 'k1')).toBe(true);

  writeKeyring('k2', ['k1', 'k2']);
  const reload = await request(vault.app).post('/admin/keys/reload').set('Authorization', admin());
  expect(reload.body.active).toBe('k2');

  const started = await request(vault.app).post('/admin/rewrap').set('Authorization', admin());
  expect(started.status).toBe(202);
  expect(started.body.job).toMatchObject({ state: 'running', target: 'k2', total: USERS });
  const again = await request(vault.app).post('/admin/rewrap').set('Authorization', admin());
  expect(again.body.job.id).toBe(started.body.job.id); // one job at a time

  // Live traffic while the job runs: readers everywhere, writers on users 300..399.
  let running = true;
  const failures: string[] = [];
  const lastWrite = new Map<number, string>();
  const traffic = async (worker: number) => {
    for (let n = 0; running; n++) {
      const i = (worker * 37 + n * 13) % USERS;
      if (i >= 300 && n % 2 === 0) {
        const token = `at-${i}-${worker}-${n}`;
        const put = await request(vault.app).put(`/tokens/rw-${i}/github`).set('Authorization', vault.auth(vault.keys.writer)).send({ type: 'oauth2', access_token: token });
        if (put.status !== 200) failures.push(`PUT ${i}: ${put.status}`);
        else lastWrite.set(i, token);
      } else {
        const get = await request(vault.app).get(`/tokens/rw-${i}/github`).set('Authorization', vault.auth(vault.keys.reader));
        if (get.status !== 200) failures.push(`GET ${i}: ${get.status} ${JSON.stringify(get.body)}`);
      }
    }
  };
  const workers = Array.from({ length: 6 }, (_, w) => traffic(w));
  let job = started.body.job;
  for (let i = 0; i < 200 && job.state === 'running'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    job = (await request(vault.app).get(`/admin/rewrap/${job.id}`).set('Authorization', admin())).body.job;
  }
  running = false;
  await Promise.all(workers);

  expect(failures).toEqual([]);
  expect(job).toMatchObject({ state: 'done', failed: 0, target: 'k2' });
  expect(job.done + job.skipped).toBeGreaterThan(0);
  const status = await request(vault.app).get('/admin/keys').set('Authorization', admin());
  expect(status.body.keys.map((k: { id: string; records: number }) => [k.id, k.records])).toEqual([
    ['k1', 0],
    ['k2', USERS],
  ]);
  const after = await Promise.all(Array.from({ length: 20 }, (_, i) => sealedPart(`rw-${i * 7}`)));
  after.forEach((part, i) => {
    expect(part.kek).toBe('k2');
    if (i * 7 < 300) expect(part.body).toBe(before[i]!.body); // untouched by the writers: same IV and ciphertext
  });
  for (const [i, token] of lastWrite) {
    const get = await request(vault.app).get(`/tokens/rw-${i}/github`).set('Authorization', vault.auth(vault.keys.reader));
    expect(get.body.access_token).toBe(token);
  }

  writeKeyring('k2', ['k2']);
  const retired = await request(vault.app).post('/admin/keys/reload').set('Authorization', admin());
  expect(retired.status).toBe(200);
  expect(vault.deps.keyring.get()?.ids()).toEqual(['k2']);
  expect((await request(vault.app).get('/tokens/rw-0/github').set('Authorization', vault.auth(vault.keys.reader))).body.access_token).toBe('at-0-0');
});

test('GET /admin/rewrap of an unknown job is 404, a malformed id 400', async () => {
  expect((await request(vault.app).get('/admin/rewrap/00000000-0000-4000-8000-000000000000').set('Authorization', admin())).status).toBe(404);
  expect((await request(vault.app).get('/admin/rewrap/nope').set('Authorization', admin())).status).toBe(400);
});

test('a current-job pointer left by a finished job does not block the next rewrap', async () => {
  const finished = (await client.get(keys.rewrapCurrent())) ?? undefined;
  expect(finished).toBeUndefined();
  await client.hset(keys.rewrapJob('11111111-1111-4111-8111-111111111111'), { state: 'done', target: 'k2', total: 0, done: 0, started_at: Date.now() });
  await client.set(keys.rewrapCurrent(), '11111111-1111-4111-8111-111111111111');
  const started = await request(vault.app).post('/admin/rewrap').set('Authorization', admin());
  expect(started.status).toBe(202);
  expect(started.body.job.id).not.toBe('11111111-1111-4111-8111-111111111111');
});
