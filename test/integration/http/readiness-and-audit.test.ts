import request from 'supertest';
import { startVault, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * /readyz without a keyring, and an audit trail that log verbosity cannot turn off.
 */
let redis: RedisServer;
const vaults: TestVault[] = [];
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => {
  await Promise.all(vaults.map((vault) => vault.close()));
  await redis.stop();
});

async function vaultWith(options: Omit<Parameters<typeof startVault>[0], 'redis'>): Promise<TestVault> {
  const vault = await startVault({ ...options, redis });
  vaults.push(vault);
  return vault;
}

test('without a keyring /readyz answers 503 naming the keyring, and token calls answer 503 unavailable', async () => {
  const vault = await vaultWith({
    config: (standard) => {
      const { keyring: _keyring, ...rest } = standard;
      return rest;
    },
  });
  expect(vault.deps.keyring.get()).toBeUndefined();

  const ready = await request(vault.app).get('/readyz');
  expect(ready.status).toBe(503);
  expect(ready.headers['retry-after']).toMatch(/^\d+$/);
  expect(ready.body.error).toMatchObject({ code: 'unavailable', details: [{ path: 'keyring', message: 'no keyring is loaded' }] });

  const put = await request(vault.app)
    .put('/tokens/no-keyring/github')
    .set('Authorization', vault.auth(vault.keys.writer))
    .send({ type: 'oauth2', access_token: 'at-no-keyring' });
  expect(put.status).toBe(503);
  expect(put.body.error.code).toBe('unavailable');
  expect(put.headers['retry-after']).toMatch(/^\d+$/);
  const client = redis.client();
  try {
    expect(await client.keys('tv:*:cred:no-keyring:*')).toEqual([]);
  } finally {
    client.disconnect();
  }
});

test.each(['error', 'silent'] as const)('at LOG_LEVEL=%s audit entries are still written, and nothing else below that level', async (level) => {
  const vault = await vaultWith({ logLevel: level });
  const auth = vault.auth(vault.keys.writer);
  const user = `audit-${level}`;
  expect((await request(vault.app).put(`/tokens/${user}/github`).set('Authorization', auth).send({ type: 'oauth2', access_token: 'at-a' })).status).toBe(201);
  expect((await request(vault.app).get(`/tokens/${user}/github`).set('Authorization', auth)).status).toBe(200);
  expect((await request(vault.app).delete(`/tokens/${user}/github`).set('Authorization', auth)).status).toBe(204);

  const entries = vault.logs.entries();
  expect(entries.filter((entry) => entry.audit !== true)).toEqual([]);
  expect(vault.logs.audit().map(({ action, caller, user: who, provider, outcome }) => ({ action, caller, user: who, provider, outcome }))).toEqual([
    { action: 'credential.put', caller: 'writer', user, provider: 'github', outcome: 'ok' },
    { action: 'credential.reveal', caller: 'writer', user, provider: 'github', outcome: 'ok' },
    { action: 'credential.delete', caller: 'writer', user, provider: 'github', outcome: 'ok' },
  ]);
  for (const entry of vault.logs.audit()) expect(entry.request_id).toEqual(expect.any(String));
});
