import type { Redis } from 'ioredis';
import request from 'supertest';
import { startVault, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * The token API of DESIGN §4 as a caller sees it: PUT, GET, list and DELETE of credentials,
 * conditional writes, and what each leaves in Redis.
 */

let redis: RedisServer;
let client: Redis;
let vault: TestVault;
beforeAll(async () => {
  redis = await RedisServer.start();
  client = redis.client();
  vault = await startVault({ redis });
});
afterAll(async () => {
  await vault.close();
  client.disconnect();
  await redis.stop();
});

const iso = (ms: number) => new Date(ms).toISOString();
const path = (user: string, provider?: string) =>
  `/tokens/${encodeURIComponent(user)}${provider === undefined ? '' : `/${encodeURIComponent(provider)}`}`;

const as = (key: string) => ({ Authorization: vault.auth(key) });
const put = (user: string, provider: string, body: object, key = vault.keys.writer) => request(vault.app).put(path(user, provider)).set(as(key)).send(body);
const get = (user: string, provider: string, key = vault.keys.reader) => request(vault.app).get(path(user, provider)).set(as(key));
const list = (user: string, key = vault.keys.reader) => request(vault.app).get(path(user)).set(as(key));
const del = (user: string, provider: string, key = vault.keys.writer) => request(vault.app).delete(path(user, provider)).set(as(key));

/** The DESIGN §4 error shape: exactly { error: { code, message, details? } }. */
function expectError(res: request.Response, status: number, code: string): { code: string; message: string; details?: { path: string; message: string }[] } {
  expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(['code', 'details', 'message']).toEqual(expect.arrayContaining(Object.keys(res.body.error)));
  expect(res.body.error.message).toEqual(expect.any(String));
  expect(res.body.error.message).not.toBe('');
  return res.body.error;
}

function expectNoSecrets(res: request.Response, ...secrets: string[]): void {
  for (const secret of secrets) expect(res.text).not.toContain(secret);
}

/** Every Redis key about `user` (its records and its provider index). */
async function keysOf(user: string): Promise<string[]> {
  return (await client.keys('*')).filter((key) => key.endsWith(`:user:${user}`) || key.includes(`:cred:${user}:`));
}

/** Every field value of a Redis HASH, as raw bytes. */
async function hashBytes(key: string): Promise<Buffer> {
  const hash = await client.hgetallBuffer(key);
  return Buffer.concat(Object.entries(hash).flatMap(([field, value]) => [Buffer.from(field), value]));
}

describe('PUT /tokens/:user/:provider', () => {
  test('a new OAuth 2.0 credential answers 201 with its public view, ETag and Location, and no token values', async () => {
    const now = vault.clock.now();
    const res = await put('put-new', 'github', {
      type: 'oauth2',
      access_token: 'at-put-new-secret',
      refresh_token: 'rt-put-new-secret',
      id_token: 'idt-put-new-secret',
      expires_in: 3600,
      scope: 'repo user',
      account_id: 'gh-1234',
    });

    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      user: 'put-new',
      provider: 'github',
      type: 'oauth2',
      state: 'active',
      version: expect.any(Number),
      expires_at: iso(now + 3600_000),
      scope: 'repo user',
      account_id: 'gh-1234',
      created_at: iso(now),
      updated_at: iso(now),
    });
    expect(Number.isInteger(res.body.version)).toBe(true);
    expect(res.headers.etag).toBe(`"${res.body.version}"`);
    expect(res.headers.location).toBe('/tokens/put-new/github');
    expect(res.headers['cache-control']).toBe('no-store');
    expectNoSecrets(res, 'at-put-new-secret', 'rt-put-new-secret', 'idt-put-new-secret');
  });

  test('the stored record holds no token in clear anywhere in Redis', async () => {
    const res = await put('put-sealed', 'github', { type: 'oauth2', access_token: 'at-sealed-secret', refresh_token: 'rt-sealed-secret', expires_in: 600 });
    expect(res.status).toBe(201);

    const bytes = await hashBytes(vault.deps.keys.credential('put-sealed', 'github'));
    expect(bytes.length).toBeGreaterThan(0);
    expect(bytes.includes('at-sealed-secret')).toBe(false);
    expect(bytes.includes('rt-sealed-secret')).toBe(false);
    expect(await client.hget(vault.deps.keys.credential('put-sealed', 'github'), 'version')).toBe(String(res.body.version));
  });

  test('the Location of a new credential leads back to it, for a user id with every allowed punctuation', async () => {
    const user = 'Ann.Lee+tv_1@example.com:team|a-b';
    const created = await put(user, 'github', { type: 'oauth2', access_token: 'at-location' });
    expect(created.status).toBe(201);
    expect(created.body.user).toBe(user);

    const followed = await request(vault.app).get(created.headers.location as string).set(as(vault.keys.reader));
    expect(followed.status).toBe(200);
    expect(followed.body).toMatchObject({ user, provider: 'github', access_token: 'at-location' });
  });

  test('replacing a credential answers 200 with a higher version, keeps created_at and moves updated_at', async () => {
    const createdAt = vault.clock.now();
    const first = await put('put-replace', 'github', { type: 'oauth2', access_token: 'at-replace-1', expires_in: 3600 });
    expect(first.status).toBe(201);
    const kekKey = vault.deps.keys.kekCounts('put-replace');
    const recordsUnderK1 = await client.hget(kekKey, 'k1');

    vault.clock.advance(5_000);
    const second = await put('put-replace', 'github', { type: 'oauth2', access_token: 'at-replace-2', expires_in: 7200 });

    expect(second.status).toBe(200);
    expect(second.body.version).toBeGreaterThan(first.body.version);
    expect(second.headers.etag).toBe(`"${second.body.version}"`);
    expect(second.body.created_at).toBe(iso(createdAt));
    expect(second.body.updated_at).toBe(iso(createdAt + 5_000));
    expect(second.body.expires_at).toBe(iso(createdAt + 5_000 + 7200_000));
    expectNoSecrets(second, 'at-replace-1', 'at-replace-2');
    // Still one record sealed under k1 in this shard, not two.
    expect(await client.hget(kekKey, 'k1')).toBe(recordsUnderK1);

    const read = await get('put-replace', 'github');
    expect(read.body).toMatchObject({ access_token: 'at-replace-2', version: second.body.version, expires_in: 7200 });
  });

  test('a credential with a refresh token is scheduled for refresh before it expires; one without is not', async () => {
    const user = 'put-schedule';
    const keys = vault.deps.keys;
    const now = vault.clock.now();
    expect((await put(user, 'github', { type: 'oauth2', access_token: 'at-sched-1', refresh_token: 'rt-sched-1', expires_in: 3600 })).status).toBe(201);

    // DESIGN §7: expires_at - skew (300 s) - jitter (0..30 s).
    const due = Number(await client.zscore(keys.due(user), `${user}:github`));
    expect(due).toBeGreaterThan(now + (3600 - 330) * 1000 - 1);
    expect(due).toBeLessThanOrEqual(now + (3600 - 300) * 1000);
    expect(await client.hget(keys.credential(user, 'github'), 'refresh_at')).toBe(String(due));

    expect((await put(user, 'github', { type: 'oauth2', access_token: 'at-sched-2', expires_in: 3600 })).status).toBe(200);
    expect(await client.zscore(keys.due(user), `${user}:github`)).toBeNull();
    expect(await client.hexists(keys.credential(user, 'github'), 'refresh_at')).toBe(0);
  });

  test('expires_in given as a numeric string is read as whole seconds', async () => {
    const now = vault.clock.now();
    const res = await put('put-expires-string', 'github', { type: 'oauth2', access_token: 'at-string', expires_in: '120' });
    expect(res.status).toBe(201);
    expect(res.body.expires_at).toBe(iso(now + 120_000));

    const read = await get('put-expires-string', 'github');
    expect(read.body).toMatchObject({ expires_at: iso(now + 120_000), expires_in: 120 });
  });

  test('expires_at with an offset is stored and answered in UTC', async () => {
    const at = vault.clock.now() + 3600_000;
    const local = new Date(at + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    const res = await put('put-expires-at', 'github', { type: 'oauth2', access_token: 'at-expires-at', expires_at: local });
    expect(res.status).toBe(201);
    expect(res.body.expires_at).toBe(iso(at));

    const read = await get('put-expires-at', 'github');
    expect(read.body).toMatchObject({ expires_at: iso(at), expires_in: 3600 });
  });

  test('a credential with neither expires_in nor expires_at has no expiry and stays readable', async () => {
    const res = await put('put-no-expiry', 'github', { type: 'oauth2', access_token: 'at-no-expiry' });
    expect(res.status).toBe(201);
    expect(res.body.expires_at).toBeNull();

    vault.clock.advance(30 * 24 * 3600_000);
    const read = await get('put-no-expiry', 'github');
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ access_token: 'at-no-expiry', expires_at: null, expires_in: null });
  });

  test('expires_in 0 stores an already expired token that GET refuses with reauth_required when there is no refresh token', async () => {
    const now = vault.clock.now();
    const res = await put('put-expires-zero', 'github', { type: 'oauth2', access_token: 'at-expired-now', expires_in: 0 });
    expect(res.status).toBe(201);
    expect(res.body.expires_at).toBe(iso(now));

    const read = await get('put-expires-zero', 'github');
    expectError(read, 409, 'reauth_required');
    expectNoSecrets(read, 'at-expired-now');
  });

  test('expires_in and expires_at together are refused', async () => {
    const res = await put('put-both-expiries', 'github', { type: 'oauth2', access_token: 'at-both', expires_in: 60, expires_at: iso(vault.clock.now() + 60_000) });
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([expect.objectContaining({ path: 'body.expires_at' })]);
    expect((await get('put-both-expiries', 'github')).status).toBe(404);
  });

  test.each([[-1], [315_360_001], [1.5], ['12a'], ['']])('expires_in %p is refused', async (expiresIn) => {
    const res = await put('put-bad-expires-in', 'github', { type: 'oauth2', access_token: 'at-bad', expires_in: expiresIn });
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'body.expires_in' })]));
  });

  test('expires_in of ten years, the maximum, is accepted', async () => {
    const now = vault.clock.now();
    const res = await put('put-ten-years', 'github', { type: 'oauth2', access_token: 'at-ten-years', expires_in: 315_360_000 });
    expect(res.status).toBe(201);
    expect(res.body.expires_at).toBe(iso(now + 315_360_000_000));
  });

  test('expires_at that is not an ISO 8601 date-time is refused', async () => {
    const res = await put('put-bad-expires-at', 'github', { type: 'oauth2', access_token: 'at-bad', expires_at: 'tomorrow' });
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([expect.objectContaining({ path: 'body.expires_at' })]);
  });

  test('metadata of exactly 4 KB of JSON is stored and returned by GET', async () => {
    const metadata = { note: 'm'.repeat(4096 - '{"note":""}'.length) };
    expect(Buffer.byteLength(JSON.stringify(metadata))).toBe(4096);
    const res = await put('put-metadata', 'github', { type: 'oauth2', access_token: 'at-metadata', account_id: 'acct-9', metadata });
    expect(res.status).toBe(201);

    const read = await get('put-metadata', 'github');
    expect(read.status).toBe(200);
    expect(read.body.metadata).toEqual(metadata);
    expect(read.body.account_id).toBe('acct-9');
  });

  test('metadata one byte over 4 KB is refused', async () => {
    const metadata = { note: 'm'.repeat(4097 - '{"note":""}'.length) };
    const res = await put('put-metadata-big', 'github', { type: 'oauth2', access_token: 'at-metadata', metadata });
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([expect.objectContaining({ path: 'body.metadata' })]);
    expect((await get('put-metadata-big', 'github')).status).toBe(404);
  });

  test('metadata that is not a JSON object is refused', async () => {
    const res = await put('put-metadata-array', 'github', { type: 'oauth2', access_token: 'at-metadata', metadata: ['a'] });
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([expect.objectContaining({ path: 'body.metadata' })]);
  });

  test('token_type defaults to Bearer and a given one is kept', async () => {
    expect((await put('put-token-type', 'github', { type: 'oauth2', access_token: 'at-default-type' })).status).toBe(201);
    expect((await get('put-token-type', 'github')).body.token_type).toBe('Bearer');

    expect((await put('put-token-type', 'google', { type: 'oauth2', access_token: 'at-mac', token_type: 'mac' })).status).toBe(201);
    expect((await get('put-token-type', 'google')).body.token_type).toBe('mac');
  });

  test('an OAuth 1.0a credential is stored and GET answers the token and its secret', async () => {
    const res = await put('put-oauth1', 'twitter', { type: 'oauth1', oauth_token: 'ot-oauth1', oauth_token_secret: 'ots-oauth1-secret', account_id: 'tw-77' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      user: 'put-oauth1',
      provider: 'twitter',
      type: 'oauth1',
      state: 'active',
      version: expect.any(Number),
      account_id: 'tw-77',
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    expectNoSecrets(res, 'ot-oauth1', 'ots-oauth1-secret');

    const read = await get('put-oauth1', 'twitter');
    expect(read.status).toBe(200);
    expect(read.headers.etag).toBe(`"${res.body.version}"`);
    expect(read.body).toEqual({
      user: 'put-oauth1',
      provider: 'twitter',
      type: 'oauth1',
      oauth_token: 'ot-oauth1',
      oauth_token_secret: 'ots-oauth1-secret',
      account_id: 'tw-77',
      version: res.body.version,
    });
  });

  test('GET of a credential of a signOnly provider never includes oauth_token_secret', async () => {
    const res = await put('put-signonly', 'twitter-signonly', { type: 'oauth1', oauth_token: 'ot-signonly', oauth_token_secret: 'ots-signonly-secret' });
    expect(res.status).toBe(201);

    const read = await get('put-signonly', 'twitter-signonly', vault.keys.admin);
    expect(read.status).toBe(200);
    expect(read.body).toEqual({ user: 'put-signonly', provider: 'twitter-signonly', type: 'oauth1', oauth_token: 'ot-signonly', version: res.body.version });
    expectNoSecrets(read, 'ots-signonly-secret');
  });

  test.each([
    ['github', { type: 'oauth1', oauth_token: 'ot', oauth_token_secret: 'ots' }, 'oauth2'],
    ['twitter', { type: 'oauth2', access_token: 'at' }, 'oauth1'],
  ])('a body whose type differs from provider %s is refused at body.type', async (provider, body, expected) => {
    const res = await put('put-type-mismatch', provider, body);
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([{ path: 'body.type', message: `must be "${expected}"` }]);
    expect((await get('put-type-mismatch', provider)).status).toBe(404);
  });

  test.each([
    ['an unknown field', { type: 'oauth2', access_token: 'at', extra: 1 }],
    ['an OAuth 1.0a field in an OAuth 2.0 body', { type: 'oauth2', access_token: 'at', oauth_token_secret: 'ots' }],
    ['a camelCase field', { type: 'oauth2', access_token: 'at', expiresIn: 60 }],
  ])('a body with %s is refused', async (_what, body) => {
    const res = await put('put-strict', 'github', body);
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details?.length).toBeGreaterThan(0);
    expect((await get('put-strict', 'github')).status).toBe(404);
  });
});

describe('GET /tokens/:user/:provider', () => {
  test('answers the token view with expires_in counted down by the clock, never the refresh or id token', async () => {
    const now = vault.clock.now();
    const stored = await put('get-view', 'github', {
      type: 'oauth2',
      access_token: 'at-get-view',
      refresh_token: 'rt-get-view-secret',
      id_token: 'idt-get-view-secret',
      expires_in: 3600,
      scope: 'repo',
    });
    expect(stored.status).toBe(201);

    vault.clock.advance(600_500);
    const res = await get('get-view', 'github');

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      user: 'get-view',
      provider: 'github',
      type: 'oauth2',
      access_token: 'at-get-view',
      token_type: 'Bearer',
      expires_at: iso(now + 3600_000),
      expires_in: 2999,
      scope: 'repo',
      version: stored.body.version,
    });
    expect(res.headers.etag).toBe(`"${stored.body.version}"`);
    expect(res.headers['cache-control']).toBe('no-store');
    expectNoSecrets(res, 'rt-get-view-secret', 'idt-get-view-secret');
  });

  test('a token is served until the second it expires', async () => {
    await put('get-last-second', 'github', { type: 'oauth2', access_token: 'at-last-second', expires_in: 60 });
    vault.clock.advance(59_000);
    const res = await get('get-last-second', 'github');
    expect(res.status).toBe(200);
    expect(res.body.expires_in).toBe(1);
  });

  test('min_ttl as a whole number of seconds is accepted', async () => {
    await put('get-min-ttl', 'github', { type: 'oauth2', access_token: 'at-min-ttl', expires_in: 3600 });
    const res = await request(vault.app).get('/tokens/get-min-ttl/github?min_ttl=60').set(as(vault.keys.reader));
    expect(res.status).toBe(200);
    expect(res.body.access_token).toBe('at-min-ttl');
  });

  test.each(['abc', '1.5', '-1', '', '1e3'])('min_ttl=%p is refused', async (value) => {
    await put('get-bad-min-ttl', 'github', { type: 'oauth2', access_token: 'at-bad-min-ttl', expires_in: 3600 });
    const res = await request(vault.app).get(`/tokens/get-bad-min-ttl/github?min_ttl=${encodeURIComponent(value)}`).set(as(vault.keys.reader));
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([expect.objectContaining({ path: 'query.min_ttl' })]);
    expectNoSecrets(res, 'at-bad-min-ttl');
  });

  test('an unknown query parameter is refused', async () => {
    await put('get-unknown-query', 'github', { type: 'oauth2', access_token: 'at-unknown-query', expires_in: 3600 });
    const res = await request(vault.app).get('/tokens/get-unknown-query/github?minttl=60').set(as(vault.keys.reader));
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([expect.objectContaining({ path: expect.stringMatching(/^query/) })]);
    expectNoSecrets(res, 'at-unknown-query');
  });

  test('an expired OAuth 2.0 token without a refresh token answers 409 reauth_required', async () => {
    await put('get-expired-no-rt', 'github', { type: 'oauth2', access_token: 'at-expired-no-rt', expires_in: 60 });
    vault.clock.advance(60_000);
    const res = await get('get-expired-no-rt', 'github');
    expectError(res, 409, 'reauth_required');
    expectNoSecrets(res, 'at-expired-no-rt');
  });

  test('an expired OAuth 2.0 token with a refresh token answers 503 provider_unavailable with Retry-After', async () => {
    await put('get-expired-rt', 'github', { type: 'oauth2', access_token: 'at-expired-rt', refresh_token: 'rt-expired-rt', expires_in: 60 });
    vault.clock.advance(61_000);
    const res = await get('get-expired-rt', 'github');
    expectError(res, 503, 'provider_unavailable');
    expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expectNoSecrets(res, 'at-expired-rt', 'rt-expired-rt');
  });

  test('a credential whose state is reauth_required answers 409 and is listed in that state', async () => {
    await put('get-reauth-state', 'github', { type: 'oauth2', access_token: 'at-reauth-state', expires_in: 3600 });
    await client.hset(vault.deps.keys.credential('get-reauth-state', 'github'), 'state', 'reauth_required');

    const res = await get('get-reauth-state', 'github');
    expectError(res, 409, 'reauth_required');
    expectNoSecrets(res, 'at-reauth-state');

    const listed = await list('get-reauth-state');
    expect(listed.body.credentials).toEqual([expect.objectContaining({ provider: 'github', state: 'reauth_required' })]);
  });

  test('a credential that was never stored answers 404 not_found', async () => {
    expectError(await get('get-missing', 'github'), 404, 'not_found');
  });
});

describe('GET /tokens/:user', () => {
  /** All four providers: with fewer, Redis happens to answer SMEMBERS already sorted. */
  async function storeAll(user: string): Promise<void> {
    expect((await put(user, 'twitter-signonly', { type: 'oauth1', oauth_token: `ot2-${user}`, oauth_token_secret: `ots2-${user}` })).status).toBe(201);
    expect((await put(user, 'twitter', { type: 'oauth1', oauth_token: `ot-${user}`, oauth_token_secret: `ots-${user}` })).status).toBe(201);
    expect((await put(user, 'google', { type: 'oauth2', access_token: `at-google-${user}`, refresh_token: `rt-google-${user}`, expires_in: 600 })).status).toBe(201);
    expect((await put(user, 'github', { type: 'oauth2', access_token: `at-github-${user}`, scope: 'repo' })).status).toBe(201);
  }

  test('lists public views sorted by provider, without token values', async () => {
    await storeAll('list-all');
    const now = vault.clock.now();

    const res = await list('list-all');

    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      user: 'list-all',
      credentials: [
        {
          user: 'list-all',
          provider: 'github',
          type: 'oauth2',
          state: 'active',
          version: expect.any(Number),
          expires_at: null,
          scope: 'repo',
          account_id: null,
          created_at: iso(now),
          updated_at: iso(now),
        },
        expect.objectContaining({ provider: 'google', type: 'oauth2', expires_at: iso(now + 600_000), scope: null }),
        expect.objectContaining({ provider: 'twitter', type: 'oauth1', state: 'active' }),
        expect.objectContaining({ provider: 'twitter-signonly', type: 'oauth1', state: 'active' }),
      ],
    });
    expect(Object.keys(res.body.credentials[2]).sort()).toEqual(['account_id', 'created_at', 'provider', 'state', 'type', 'updated_at', 'user', 'version']);
    expectNoSecrets(res, 'at-github-list-all', 'at-google-list-all', 'rt-google-list-all', 'ot-list-all', 'ots-list-all', 'ot2-list-all', 'ots2-list-all');
  });

  test('a caller limited to github sees only github', async () => {
    await storeAll('list-github-only');
    const res = await list('list-github-only', vault.keys.githubOnly);
    expect(res.status).toBe(200);
    expect(res.body.credentials.map((c: { provider: string }) => c.provider)).toEqual(['github']);
    expectNoSecrets(res, 'at-github-list-github-only');
  });

  test('an unknown user has an empty list', async () => {
    const res = await list('list-nobody');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ user: 'list-nobody', credentials: [] });
  });
});

describe('DELETE /tokens/:user/:provider', () => {
  test('deletes the credential and every index entry for it, keeping only the shard counters', async () => {
    const user = 'del-one';
    const keys = vault.deps.keys;
    expect((await put(user, 'github', { type: 'oauth2', access_token: 'at-del-one', refresh_token: 'rt-del-one', expires_in: 3600 })).status).toBe(201);
    // The refresh schedule and the index hold it before the delete.
    expect(await client.zscore(keys.due(user), `${user}:github`)).not.toBeNull();
    expect(await client.sismember(keys.userIndex(user), 'github')).toBe(1);
    const recordsUnderK1 = Number(await client.hget(keys.kekCounts(user), 'k1'));

    const res = await del(user, 'github');

    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(res.headers['cache-control']).toBe('no-store');
    expectError(await get(user, 'github'), 404, 'not_found');
    expect(await client.exists(keys.credential(user, 'github'))).toBe(0);
    expect(await client.sismember(keys.userIndex(user), 'github')).toBe(0);
    expect(await client.zscore(keys.due(user), `${user}:github`)).toBeNull();
    expect(Number((await client.hget(keys.kekCounts(user), 'k1')) ?? 0)).toBe(recordsUnderK1 - 1);
    expect(await keysOf(user)).toEqual([]);
    // What is left in the shard is its counters (and other users' records, if any share it).
    const shard = keys.versions(user).replace(/seq$/, '');
    const shared = (await client.keys(`${shard}*`)).filter((key) => !key.startsWith(`${shard}cred:`) && !key.startsWith(`${shard}user:`));
    // The outbox holds the token.revoked event until the relay (not running here) moves it.
    expect(['due', 'kek', 'seq', 'outbox']).toEqual(expect.arrayContaining(shared.map((key) => key.slice(shard.length))));
    expect(await client.exists(keys.versions(user))).toBe(1);
  });

  test('a credential stored again after a delete gets a version never issued before', async () => {
    const first = await put('del-reput', 'github', { type: 'oauth2', access_token: 'at-reput-1' });
    expect((await del('del-reput', 'github')).status).toBe(204);
    const again = await put('del-reput', 'github', { type: 'oauth2', access_token: 'at-reput-2' });
    expect(again.status).toBe(201);
    expect(again.body.version).toBeGreaterThan(first.body.version);
  });

  test('deleting a credential that does not exist answers 404 not_found', async () => {
    expectError(await del('del-missing', 'github'), 404, 'not_found');
  });

  test('DELETE /tokens/:user by a github-only caller deletes github and leaves twitter', async () => {
    await put('del-all-github-only', 'github', { type: 'oauth2', access_token: 'at-dag' });
    await put('del-all-github-only', 'twitter', { type: 'oauth1', oauth_token: 'ot-dag', oauth_token_secret: 'ots-dag' });

    const res = await request(vault.app).delete('/tokens/del-all-github-only').set(as(vault.keys.githubOnly));

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ user: 'del-all-github-only', deleted: ['github'] });
    expect((await get('del-all-github-only', 'github')).status).toBe(404);
    expect((await get('del-all-github-only', 'twitter')).body.oauth_token).toBe('ot-dag');
    expect(await client.smembers(vault.deps.keys.userIndex('del-all-github-only'))).toEqual(['twitter']);
  });

  test('DELETE /tokens/:user by an all-providers caller deletes every credential of the user', async () => {
    await put('del-all', 'twitter', { type: 'oauth1', oauth_token: 'ot-da', oauth_token_secret: 'ots-da' });
    await put('del-all', 'github', { type: 'oauth2', access_token: 'at-da', refresh_token: 'rt-da', expires_in: 3600 });

    const res = await request(vault.app).delete('/tokens/del-all').set(as(vault.keys.writer));

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ user: 'del-all', deleted: ['github', 'twitter'] });
    expect((await list('del-all')).body.credentials).toEqual([]);
    expect(await keysOf('del-all')).toEqual([]);
  });

  test('DELETE /tokens/:user of a user with no credentials answers an empty list', async () => {
    const res = await request(vault.app).delete('/tokens/del-all-nobody').set(as(vault.keys.writer));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ user: 'del-all-nobody', deleted: [] });
  });
});

describe('conditional writes', () => {
  const body = (token: string) => ({ type: 'oauth2', access_token: token });

  test('PUT with If-Match of the current version replaces the credential', async () => {
    const first = await put('cond-put-match', 'github', body('at-cond-1'));
    const res = await request(vault.app).put('/tokens/cond-put-match/github').set(as(vault.keys.writer)).set('If-Match', first.headers.etag as string).send(body('at-cond-2'));
    expect(res.status).toBe(200);
    expect(res.body.version).toBeGreaterThan(first.body.version);
    expect((await get('cond-put-match', 'github')).body.access_token).toBe('at-cond-2');
  });

  test('PUT with a stale If-Match answers 412 and leaves the credential as it was', async () => {
    const first = await put('cond-put-stale', 'github', body('at-stale-1'));
    const second = await put('cond-put-stale', 'github', body('at-stale-2'));
    const res = await request(vault.app).put('/tokens/cond-put-stale/github').set(as(vault.keys.writer)).set('If-Match', `"${first.body.version}"`).send(body('at-stale-3'));
    expectError(res, 412, 'precondition_failed');
    expect((await get('cond-put-stale', 'github')).body).toMatchObject({ access_token: 'at-stale-2', version: second.body.version });
  });

  test('PUT with If-Match: * on an absent credential answers 412 and creates nothing', async () => {
    const res = await request(vault.app).put('/tokens/cond-put-star-absent/github').set(as(vault.keys.writer)).set('If-Match', '*').send(body('at-star'));
    expectError(res, 412, 'precondition_failed');
    expect((await get('cond-put-star-absent', 'github')).status).toBe(404);
    expect(await keysOf('cond-put-star-absent')).toEqual([]);
  });

  test('PUT with If-Match: "0" on an absent credential answers 412 and creates nothing', async () => {
    // No record ever has version 0 (versions start at 1), so this tag matches nothing.
    const res = await request(vault.app).put('/tokens/cond-put-zero/github').set(as(vault.keys.writer)).set('If-Match', '"0"').send(body('at-zero'));
    expectError(res, 412, 'precondition_failed');
    expect((await get('cond-put-zero', 'github')).status).toBe(404);
  });

  test('PUT with a weak If-Match tag of the current version answers 412 (weak tags never match If-Match)', async () => {
    const stored = await put('cond-put-weak', 'github', body('at-weak-1'));
    const res = await request(vault.app)
      .put('/tokens/cond-put-weak/github')
      .set(as(vault.keys.writer))
      .set('If-Match', `W/"${stored.body.version}"`)
      .send(body('at-weak-2'));
    expectError(res, 412, 'precondition_failed');
    expect((await get('cond-put-weak', 'github')).body).toMatchObject({ access_token: 'at-weak-1', version: stored.body.version });
  });

  test('PUT with If-Match: * on an existing credential replaces it', async () => {
    await put('cond-put-star', 'github', body('at-star-1'));
    const res = await request(vault.app).put('/tokens/cond-put-star/github').set(as(vault.keys.writer)).set('If-Match', '*').send(body('at-star-2'));
    expect(res.status).toBe(200);
  });

  test('PUT with If-None-Match: * creates once, then answers 412', async () => {
    const send = (token: string) => request(vault.app).put('/tokens/cond-none-match/github').set(as(vault.keys.writer)).set('If-None-Match', '*').send(body(token));
    const created = await send('at-none-1');
    expect(created.status).toBe(201);
    expectError(await send('at-none-2'), 412, 'precondition_failed');
    expect((await get('cond-none-match', 'github')).body).toMatchObject({ access_token: 'at-none-1', version: created.body.version });
  });

  test('DELETE with If-Match of the current version deletes', async () => {
    const stored = await put('cond-del-match', 'github', body('at-del-match'));
    const res = await request(vault.app).delete('/tokens/cond-del-match/github').set(as(vault.keys.writer)).set('If-Match', `"${stored.body.version}"`);
    expect(res.status).toBe(204);
    expect((await get('cond-del-match', 'github')).status).toBe(404);
  });

  test('DELETE with a stale If-Match answers 412 and keeps the credential', async () => {
    const first = await put('cond-del-stale', 'github', body('at-del-stale-1'));
    await put('cond-del-stale', 'github', body('at-del-stale-2'));
    const res = await request(vault.app).delete('/tokens/cond-del-stale/github').set(as(vault.keys.writer)).set('If-Match', `"${first.body.version}"`);
    expectError(res, 412, 'precondition_failed');
    expect((await get('cond-del-stale', 'github')).body.access_token).toBe('at-del-stale-2');
  });

  test.each([
    ['PUT', 'If-Match', 'v1'],
    ['PUT', 'If-Match', '"abc"'],
    ['PUT', 'If-None-Match', '"1"'],
    ['DELETE', 'If-Match', 'not-a-version'],
    ['DELETE', 'If-None-Match', '*'],
  ])('%s with %s: %s answers 400 and changes nothing', async (method, header, value) => {
    const stored = await put('cond-malformed', 'github', body('at-malformed'));
    const path = '/tokens/cond-malformed/github';
    const call = method === 'PUT' ? request(vault.app).put(path).send(body('at-malformed-2')) : request(vault.app).delete(path);
    const res = await call.set(as(vault.keys.writer)).set(header, value);
    expectError(res, 400, 'invalid_request');
    expect((await get('cond-malformed', 'github')).body).toMatchObject({ access_token: 'at-malformed', version: stored.body.version });
  });
});

describe('metrics of the token routes', () => {
  test('request latency is labelled by route template and never names a user', async () => {
    const user = 'metrics-user-7f3a9c';
    expect((await put(user, 'github', { type: 'oauth2', access_token: 'at-metrics' })).status).toBe(201);
    expect((await get(user, 'github')).status).toBe(200);
    expect((await list(user)).status).toBe(200);

    const res = await request(vault.app).get('/metrics');

    expect(res.status).toBe(200);
    expect(res.text).toMatch(/token_vault_http_request_duration_seconds_count\{method="PUT",route="\/tokens\/:user\/:provider",status="201"\} [1-9]/);
    expect(res.text).toMatch(/token_vault_http_request_duration_seconds_count\{method="GET",route="\/tokens\/:user\/:provider",status="200"\} [1-9]/);
    expect(res.text).toMatch(/token_vault_http_request_duration_seconds_count\{method="GET",route="\/tokens\/:user",status="200"\} [1-9]/);
    for (const someone of [user, 'put-new', 'get-view', 'list-all', 'del-one', 'Ann.Lee']) expect(res.text).not.toContain(someone);
    expect(res.text).not.toContain('at-metrics');
  });
});
