import request from 'supertest';
import { startVault, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

let redis: RedisServer;
let vault: TestVault;
beforeAll(async () => {
  redis = await RedisServer.start();
  vault = await startVault({ redis });
});
afterAll(async () => {
  await vault.close();
  await redis.stop();
});

test('a stored OAuth 2.0 token is read back', async () => {
  const put = await request(vault.app)
    .put('/tokens/u42/github')
    .set('Authorization', vault.auth(vault.keys.writer))
    .send({ type: 'oauth2', access_token: 'at-1', refresh_token: 'rt-1', expires_in: 3600 });
  expect(put.status).toBe(201);
  const get = await request(vault.app).get('/tokens/u42/github').set('Authorization', vault.auth(vault.keys.reader));
  expect(get.status).toBe(200);
  expect(get.body).toMatchObject({ access_token: 'at-1', expires_in: 3600, version: put.body.version });
});
