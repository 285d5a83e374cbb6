import type { Redis } from 'ioredis';
import request from 'supertest';
import { Keys, shardOf } from '../../../src/store/keys';
import { startVault, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Two replicas (two vaults, each with its own Redis connection, same keyring and callers) write
 * one credential at the same time. Exactly one consistent version must remain: the record,
 * its counters, its index and its schedule all describe the same write.
 */
let redis: RedisServer;
let client: Redis;
let a: TestVault;
let b: TestVault;

beforeAll(async () => {
  redis = await RedisServer.start();
  client = redis.client();
  a = await startVault({ redis });
  b = await startVault({ redis, keys: a.keys, keyringJson: a.keyringJson });
});

afterAll(async () => {
  client.disconnect();
  await a.close();
  await b.close();
  await redis.stop();
});

const put = (vault: TestVault, user: string, token: string, ifMatch?: string) => {
  const req = request(vault.app).put(`/tokens/${user}/github`).set('Authorization', vault.auth(vault.keys.writer));
  if (ifMatch) req.set('If-Match', ifMatch);
  return req.send({ type: 'oauth2', access_token: token, refresh_token: `rt-${token}`, expires_in: 3600 });
};

const keys = new Keys('tv:');

test('the users of these tests live in different shards (the per-shard counters below rely on it)', () => {
  expect(new Set(['race-put', 'race-if-match', 'race-delete'].map(shardOf)).size).toBe(3);
});

test('60 concurrent PUTs from two replicas leave one consistent version', async () => {
  const user = 'race-put';
  const responses = await Promise.all(Array.from({ length: 60 }, (_, i) => put(i % 2 ? a : b, user, `at-${i}`)));

  expect(responses.every((r) => r.status === 200 || r.status === 201)).toBe(true);
  expect(responses.filter((r) => r.status === 201)).toHaveLength(1);
  const versions = responses.map((r) => r.body.version as number);
  expect(new Set(versions).size).toBe(60);

  const last = Math.max(...versions);
  const winner = responses.findIndex((r) => r.body.version === last);
  for (const vault of [a, b]) {
    const get = await request(vault.app).get(`/tokens/${user}/github`).set('Authorization', vault.auth(vault.keys.reader));
    expect(get.status).toBe(200);
    expect(get.body.version).toBe(last);
    expect(get.body.access_token).toBe(`at-${winner}`);
  }

  expect(await client.hget(keys.credential(user, 'github'), 'version')).toBe(String(last));
  expect(await client.hgetall(keys.kekCounts(user))).toEqual({ k1: '1' });
  expect(await client.smembers(keys.userIndex(user))).toEqual(['github']);
  expect(await client.zrange(keys.due(user), '0', '-1')).toEqual([`${user}:github`]);
});

test('concurrent PUTs with the same If-Match: exactly one wins, the rest get 412', async () => {
  const user = 'race-if-match';
  const first = await put(a, user, 'at-base');
  expect(first.status).toBe(201);
  const etag = first.headers.etag as string;

  const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => put(i % 2 ? a : b, user, `at-cas-${i}`, etag)));
  const won = responses.filter((r) => r.status === 200);
  expect(won).toHaveLength(1);
  expect(responses.filter((r) => r.status === 412).every((r) => r.body.error.code === 'precondition_failed')).toBe(true);
  expect(responses.filter((r) => r.status === 412)).toHaveLength(19);

  const get = await request(b.app).get(`/tokens/${user}/github`).set('Authorization', b.auth(b.keys.reader));
  expect(get.body.version).toBe(won[0]?.body.version);
  expect(get.body.access_token).toBe(`at-cas-${responses.indexOf(won[0] as (typeof responses)[number])}`);
});

test('a delete racing PUTs leaves either nothing or one whole record, and counters that match', async () => {
  const user = 'race-delete';
  expect((await put(a, user, 'at-0')).status).toBe(201);
  await Promise.all([
    ...Array.from({ length: 10 }, (_, i) => put(a, user, `at-${i + 1}`)),
    request(b.app).delete(`/tokens/${user}/github`).set('Authorization', b.auth(b.keys.writer)),
    ...Array.from({ length: 10 }, (_, i) => put(b, user, `at-${i + 11}`)),
  ]);
  const exists = (await client.exists(keys.credential(user, 'github'))) === 1;
  const get = await request(a.app).get(`/tokens/${user}/github`).set('Authorization', a.auth(a.keys.reader));
  expect(get.status).toBe(exists ? 200 : 404);
  expect(await client.smembers(keys.userIndex(user))).toEqual(exists ? ['github'] : []);
  expect(await client.zrange(keys.due(user), '0', '-1')).toEqual(exists ? [`${user}:github`] : []);
  expect(await client.hgetall(keys.kekCounts(user))).toEqual(exists ? { k1: '1' } : {});
});
