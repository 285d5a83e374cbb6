import request from 'supertest';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { ScriptedTokenServer } from '../../helpers/providers/scripted-token-server';
import { RedisServer } from '../../helpers/redis-server';

let redis: RedisServer;
let provider: ScriptedTokenServer;
let vault: TestVault;
beforeAll(async () => {
  redis = await RedisServer.start();
  provider = await ScriptedTokenServer.start();
  vault = await startVault({
    redis,
    clock: TestClock.realTime(),
    config: (standard) => {
      const providers = standard.providers as Record<string, Record<string, unknown>>;
      providers.github!.tokenUrl = provider.url;
      return standard;
    },
  });
});
afterAll(async () => {
  await vault.close();
  await provider.stop();
  await redis.stop();
});

test('smoke: an expired token is refreshed once for 20 concurrent GETs', async () => {
  const put = await request(vault.app).put('/tokens/s1/github').set('Authorization', vault.auth(vault.keys.writer)).send({ type: 'oauth2', access_token: 'old', refresh_token: 'rt1', expires_in: 0 });
  expect(put.status).toBe(201);
  provider.respond({ status: 200, body: { access_token: 'new', refresh_token: 'rt2', expires_in: 3600, token_type: 'bearer' }, delayMs: 200 });
  const gets = await Promise.all(Array.from({ length: 20 }, () => request(vault.app).get('/tokens/s1/github').set('Authorization', vault.auth(vault.keys.reader))));
  expect(provider.requests).toHaveLength(1);
  expect(provider.requests[0]!.form).toMatchObject({ grant_type: 'refresh_token', refresh_token: 'rt1', client_id: 'gh-client', client_secret: 'gh-client-secret-value' });
  expect(gets.every((g) => g.status === 200 && g.body.access_token === 'new')).toBe(true);
});

test('smoke: delete during a slow refresh stays deleted', async () => {
  provider.clearRequests();
  await request(vault.app).put('/tokens/s2/github').set('Authorization', vault.auth(vault.keys.writer)).send({ type: 'oauth2', access_token: 'old', refresh_token: 'rtx', expires_in: 0 });
  provider.respond({ status: 200, body: { access_token: 'new2', refresh_token: 'rty', expires_in: 3600 }, delayMs: 500 });
  const get = request(vault.app).get('/tokens/s2/github').set('Authorization', vault.auth(vault.keys.reader)).then((r) => r);
  await new Promise((r) => setTimeout(r, 150));
  const del = await request(vault.app).delete('/tokens/s2/github').set('Authorization', vault.auth(vault.keys.writer));
  expect(del.status).toBe(204);
  const answer = await get;
  expect(answer.status).toBe(404);
  expect((await request(vault.app).get('/tokens/s2/github').set('Authorization', vault.auth(vault.keys.reader))).status).toBe(404);
});
