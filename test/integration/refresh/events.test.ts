import request from 'supertest';
import type { DomainEvent } from '../../../src/events/event-bus';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { ScriptedTokenServer } from '../../helpers/providers/scripted-token-server';
import { RedisServer } from '../../helpers/redis-server';

/**
 * token.refresh_failed and token.refresh_recovered come in pairs, so an alert raised by one is
 * resolved by the other: a brief failure shorter than refresh.failedEventAfterSeconds raises
 * neither.
 */
let redis: RedisServer;
let provider: ScriptedTokenServer;
let vault: TestVault;
const events: DomainEvent[] = [];

beforeAll(async () => {
  [redis, provider] = await Promise.all([RedisServer.start(), ScriptedTokenServer.start()]);
  vault = await startVault({
    redis,
    clock: TestClock.realTime(),
    config: (standard) => {
      (standard.providers as Record<string, Record<string, unknown>>).github!.tokenUrl = provider.url;
      standard.refresh = { failedEventAfterSeconds: 300 };
      return standard;
    },
  });
  vault.deps.events.subscribe((event) => events.push(event));
});

afterAll(async () => {
  await vault.close();
  await provider.stop();
  await redis.stop();
});

test('a failure shorter than failedEventAfterSeconds, then a success: token.refreshed only, no failed/recovered pair', async () => {
  const writer = vault.auth(vault.keys.writer);
  expect((await request(vault.app).put('/tokens/brief/github').set('Authorization', writer).send({ type: 'oauth2', access_token: 'at-0', refresh_token: 'rt-0', expires_in: 0 })).status).toBe(201);

  provider.respond({ status: 503, body: 'down' });
  const failed = await request(vault.app).get('/tokens/brief/github').set('Authorization', vault.auth(vault.keys.reader));
  expect(failed.status).toBe(503);

  provider.respond({ status: 200, body: { access_token: 'at-1', refresh_token: 'rt-1', expires_in: 3600 } });
  const recovered = await request(vault.app).post('/tokens/brief/github/refresh').set('Authorization', writer);
  expect(recovered.status).toBe(200);

  expect(provider.requests.map((r) => r.form.refresh_token)).toEqual(['rt-0', 'rt-0']);
  expect(events.filter((e) => 'user' in e && e.user === 'brief').map((e) => e.type)).toEqual(['token.refreshed']);
});
