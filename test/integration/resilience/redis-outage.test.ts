import request from 'supertest';
import { startVault, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Redis is SIGKILLed while callers keep reading: every answer is a 200 or a 503 `unavailable`
 * with Retry-After (never a 500, never a hang), /readyz turns 503, and once Redis is back on the
 * same data every credential reads back unchanged and writes work again.
 */
let redis: RedisServer;
let vault: TestVault;
const users = Array.from({ length: 20 }, (_, i) => `outage-${i}`);

beforeAll(async () => {
  redis = await RedisServer.start();
  vault = await startVault({ redis });
  for (const user of users) {
    const put = await request(vault.app)
      .put(`/tokens/${user}/github`)
      .set('Authorization', vault.auth(vault.keys.writer))
      .send({ type: 'oauth2', access_token: `at-${user}`, refresh_token: `rt-${user}`, expires_in: 3600 });
    expect(put.status).toBe(201);
  }
});

afterAll(async () => {
  await vault.close();
  await redis.stop();
});

const read = (user: string) => request(vault.app).get(`/tokens/${user}/github`).set('Authorization', vault.auth(vault.keys.reader));

async function waitUntilReady(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await request(vault.app).get('/readyz')).status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the vault did not become ready again');
}

test('Redis killed under load: 200 or 503 with Retry-After, then full recovery with no data lost', async () => {
  let stop = false;
  const statuses: number[] = [];
  const failures: { status: number; code: unknown; retryAfter: string | undefined }[] = [];
  const reader = async (worker: number) => {
    for (let i = 0; !stop; i++) {
      const response = await read(users[(worker + i) % users.length] as string);
      statuses.push(response.status);
      if (response.status !== 200) {
        failures.push({ status: response.status, code: response.body?.error?.code, retryAfter: response.headers['retry-after'] });
      }
    }
  };
  const readers = Array.from({ length: 8 }, (_, worker) => reader(worker));

  await new Promise((resolve) => setTimeout(resolve, 200));
  await redis.kill();
  await new Promise((resolve) => setTimeout(resolve, 500));

  const ready = await request(vault.app).get('/readyz');
  expect(ready.status).toBe(503);
  expect(ready.body.error.code).toBe('unavailable');
  const write = await request(vault.app)
    .put('/tokens/outage-new/github')
    .set('Authorization', vault.auth(vault.keys.writer))
    .send({ type: 'oauth2', access_token: 'at-new', expires_in: 60 });
  expect(write.status).toBe(503);
  expect(write.body.error.code).toBe('unavailable');
  expect(Number(write.headers['retry-after'])).toBeGreaterThan(0);

  await redis.restart();
  await waitUntilReady(15_000);
  stop = true;
  await Promise.all(readers);

  expect(statuses.filter((status) => status === 200).length).toBeGreaterThan(0);
  expect(failures.length).toBeGreaterThan(0);
  for (const failure of failures) {
    expect(failure).toEqual({ status: 503, code: 'unavailable', retryAfter: expect.stringMatching(/^\d+$/) });
  }

  for (const user of users) {
    const response = await read(user);
    expect(response.status).toBe(200);
    expect(response.body.access_token).toBe(`at-${user}`);
  }
  const after = await request(vault.app)
    .put('/tokens/outage-new/github')
    .set('Authorization', vault.auth(vault.keys.writer))
    .send({ type: 'oauth2', access_token: 'at-new', expires_in: 60 });
  expect(after.status).toBe(201);
});
