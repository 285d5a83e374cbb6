import type { Redis } from 'ioredis';
import request from 'supertest';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { dumpRedis, listen, secretsIn, waitFor, type Listening } from '../../helpers/checks';
import { OidcServer, type RecordedTokenRequest } from '../../helpers/providers/oidc';
import { RedisServer } from '../../helpers/redis-server';

/**
 * App tokens (DESIGN §4 `grant: client_credentials`, GET/DELETE /tokens/_app/:provider; §7) against
 * oidc-provider's client credentials grant with its `cc-client`: minted on first use once for
 * every replica, cached, renewed on demand under the min_ttl rule and by the scheduler, dropped
 * by DELETE, sealed in Redis like any credential.
 *
 * Each scenario has its own provider id (all of them the same cc-client), so one scenario's
 * cached token is not another's. The main vault's clock is fixed and moved by hand; the
 * scheduler scenario runs its own vault on real time against a provider whose tokens live 2 s.
 */

const CC_PROVIDERS = ['cc', 'cc-race', 'cc-down', 'cc-herd', 'cc-refused', 'cc-stale', 'cc-delete'] as const;
// Long enough that the renewal (due at 80% of the life) has a second of slack on a loaded CI machine.
const SHORT_TTL_SECONDS = 6;

let redis: RedisServer;
let inspect: Redis;
let oidc: OidcServer;
let shortOidc: OidcServer;
let vault: TestVault;
let http: Listening;
/** Every access token a provider answered in this file: none may be stored in clear or logged. */
const minted = new Map<string, string>();

function appProvider(server: OidcServer): Record<string, unknown> {
  return {
    type: 'oauth2',
    grant: 'client_credentials',
    clientId: server.clients.cc.id,
    clientSecret: server.clients.cc.secret,
    clientAuth: 'client_secret_basic',
    tokenUrl: server.tokenUrl,
    scopes: ['api:read'],
  };
}

function configure(standard: Record<string, unknown>): Record<string, unknown> {
  const providers = standard.providers as Record<string, Record<string, unknown>>;
  for (const id of CC_PROVIDERS) providers[id] = appProvider(oidc);
  return standard;
}

beforeAll(async () => {
  [redis, oidc, shortOidc] = await Promise.all([RedisServer.start(), OidcServer.start(), OidcServer.start({ accessTtlSeconds: SHORT_TTL_SECONDS })]);
  inspect = redis.client();
  vault = await startVault({ redis, config: configure });
  http = await listen(vault.app);
});

afterAll(async () => {
  await http?.close();
  await vault?.close();
  inspect?.disconnect();
  await Promise.all([oidc?.stop(), shortOidc?.stop()]);
  await redis?.stop();
});

beforeEach(async () => {
  await oidc.reset();
});

// ---- helpers ---------------------------------------------------------------------------------

const bearer = (key: string) => `Bearer ${key}`;

const getApp = (provider: string, options: { minTtl?: number; key?: string; target?: string } = {}) =>
  request(options.target ?? http.url)
    .get(`/tokens/_app/${provider}${options.minTtl === undefined ? '' : `?min_ttl=${options.minTtl}`}`)
    .set('Authorization', bearer(options.key ?? vault.keys.reader));

const deleteApp = (provider: string) => request(http.url).delete(`/tokens/_app/${provider}`).set('Authorization', bearer(vault.keys.writer));

async function ccRequests(server = oidc): Promise<RecordedTokenRequest[]> {
  return (await server.requests()).filter((r) => r.path === '/token' && r.form.grant_type === 'client_credentials');
}

function remember(token: unknown): string {
  expect(typeof token).toBe('string');
  minted.set(`token${minted.size}`, token as string);
  return token as string;
}

const appRecord = (provider: string, target = vault) => target.deps.keys.credential('_app', provider);

// ---- scenarios -------------------------------------------------------------------------------

test('first GET mints with client_credentials (basic auth, scope api:read); the second serves the cached token without a provider call', async () => {
  const first = await getApp('cc');
  expect(first.status).toBe(200);
  expect(first.body).toEqual({
    user: '_app',
    provider: 'cc',
    version: expect.any(Number),
    type: 'oauth2',
    access_token: expect.any(String),
    token_type: 'Bearer',
    expires_at: new Date(vault.clock.now() + 3600_000).toISOString(),
    expires_in: 3600,
    scope: 'api:read',
  });
  expect(first.headers.etag).toBe(`"${first.body.version as number}"`);
  const token = remember(first.body.access_token);
  expect(await oidc.active(token, 'cc')).toBe(true);

  const [call, ...others] = await ccRequests();
  expect(others).toHaveLength(0);
  expect(call!.headers.authorization).toBe(`Basic ${Buffer.from('cc-client:cc-secret').toString('base64')}`);
  expect(call!.form).toEqual({ grant_type: 'client_credentials', scope: 'api:read' });

  const second = await getApp('cc');
  expect(second.status).toBe(200);
  expect(second.body).toMatchObject({ access_token: token, version: first.body.version });
  expect(await ccRequests()).toHaveLength(1);

  // Audited as reveals of the app "user".
  const reveals = vault.logs.audit().filter((entry) => entry.action === 'credential.reveal' && entry.provider === 'cc');
  expect(reveals).toEqual([
    expect.objectContaining({ caller: 'reader', user: '_app', outcome: 'ok', version: first.body.version }),
    expect.objectContaining({ caller: 'reader', user: '_app', outcome: 'ok', version: first.body.version }),
  ]);
});

test('min_ttl: a fresh token is served whatever min_ttl asks (capped at half its life); past half its life, a larger min_ttl renews it once', async () => {
  const first = await getApp('cc');
  const token = first.body.access_token as string;
  await oidc.clearRequests();

  // More than the token's whole life: capped at half of it, so a fresh token is not renewed in a loop.
  expect((await getApp('cc', { minTtl: 7200 })).body.access_token).toBe(token);
  expect(await ccRequests()).toHaveLength(0);

  // 1700 s left of 3600: min_ttl 1000 is satisfied, min_ttl 2000 is not.
  vault.clock.advance(1900_000);
  const kept = await getApp('cc', { minTtl: 1000 });
  expect(kept.body).toMatchObject({ access_token: token, expires_in: 1700 });
  expect(await ccRequests()).toHaveLength(0);

  const renewed = await getApp('cc', { minTtl: 2000 });
  expect(renewed.status).toBe(200);
  const newToken = remember(renewed.body.access_token);
  expect(newToken).not.toBe(token);
  expect(renewed.body).toMatchObject({ expires_in: 3600, version: expect.any(Number) });
  expect(renewed.body.version).toBeGreaterThan(first.body.version as number);
  expect(await ccRequests()).toHaveLength(1);
  expect(await oidc.active(newToken, 'cc')).toBe(true);

  expect((await getApp('cc', { minTtl: 2000 })).body.access_token).toBe(newToken);
  expect(await ccRequests()).toHaveLength(1);
});

test('50 concurrent GETs across two replicas with nothing cached: exactly one client_credentials request, everyone gets its token', async () => {
  const replica = await startVault({ redis, keys: vault.keys, keyringJson: vault.keyringJson, clock: vault.clock, config: configure });
  const replicaHttp = await listen(replica.app);
  try {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => getApp('cc-race', { target: i % 2 === 0 ? http.url : replicaHttp.url })));
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    const tokens = new Set(answers.map((a) => a.body.access_token as string));
    expect(tokens.size).toBe(1);
    remember([...tokens][0]);
    expect(new Set(answers.map((a) => a.body.version as number)).size).toBe(1);
    expect(await ccRequests()).toHaveLength(1);
    expect(await inspect.exists(appRecord('cc-race'))).toBe(1);
  } finally {
    await replicaHttp.close();
    await replica.close();
  }
});

test('the token endpoint answers 503 to the first mint: 503 provider_unavailable with Retry-After and nothing stored; GETs during the backoff make no call; then a GET mints', async () => {
  await oidc.mode({ mode: 'status', status: 503, retryAfter: 1, body: { error: 'temporarily_unavailable' }, times: 1 });
  const down = await getApp('cc-down');
  expect(down.status).toBe(503);
  expect(down.headers['retry-after']).toBe('1');
  expect(down.body.error).toMatchObject({ code: 'provider_unavailable' });
  expect(await inspect.exists(appRecord('cc-down'))).toBe(0);
  // The lease on the missing record was given back.
  expect(await inspect.hget(vault.deps.keys.leases('_app'), '_app:cc-down')).toBeNull();

  // Within the 2 s probe gap (longer than this Retry-After), callers get 503 and the provider no call.
  const backingOff = await getApp('cc-down');
  expect(backingOff.status).toBe(503);
  expect(Number(backingOff.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect(await ccRequests()).toHaveLength(1);

  const recovered = await waitFor(async () => {
    const answer = await getApp('cc-down');
    return answer.status === 200 ? answer : undefined;
  }, 'the mint backoff to end', 5000);
  remember(recovered.body.access_token);
  expect(await ccRequests()).toHaveLength(2);
  expect(await inspect.exists(appRecord('cc-down'))).toBe(1);
});

test('provider down and nothing cached: 50 concurrent GETs across two replicas, then 5 more, cause one mint attempt (probes at most every 2 s, DESIGN §7)', async () => {
  const replica = await startVault({ redis, keys: vault.keys, keyringJson: vault.keyringJson, clock: vault.clock, config: configure });
  const replicaHttp = await listen(replica.app);
  try {
    await oidc.mode({ mode: 'status', status: 503, body: { error: 'temporarily_unavailable' }, delayMs: 100, times: 1000 });
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => getApp('cc-herd', { target: i % 2 === 0 ? http.url : replicaHttp.url })));
    for (let i = 0; i < 5; i++) answers.push(await getApp('cc-herd', { target: i % 2 === 0 ? http.url : replicaHttp.url }));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([503]));
    expect(answers.every((a) => Number(a.headers['retry-after']) >= 1)).toBe(true);
    expect(await inspect.exists(appRecord('cc-herd'))).toBe(0);
    // Concurrent callers wait for the one attempt in flight; later ones within the probe gap get its failure.
    expect((await ccRequests()).length).toBe(1);
  } finally {
    await oidc.reset();
    await replicaHttp.close();
    await replica.close();
  }
});

test('the provider refuses the client (invalid_client): 502 provider_error, nothing stored, the refusal logged without the client secret', async () => {
  await oidc.mode({ mode: 'status', status: 401, body: { error: 'invalid_client' }, times: 1 });
  const refused = await getApp('cc-refused');
  expect(refused.status).toBe(502);
  expect(refused.body.error).toMatchObject({ code: 'provider_error' });
  expect(JSON.stringify(refused.body)).not.toContain(oidc.clients.cc.secret);
  expect(await inspect.exists(appRecord('cc-refused'))).toBe(0);
  expect(vault.logs.entries()).toContainEqual(expect.objectContaining({ provider: 'cc-refused', outcome: 'invalid_client' }));
  expect(secretsIn(vault.logs.text(), { clientSecret: oidc.clients.cc.secret })).toEqual([]);
});

test('a renewal the provider answers with 503 while the old token is still valid: the old one is served with Warning 110 stale; probes at most every 2 s, then renews', async () => {
  const first = await getApp('cc-stale');
  const token = remember(first.body.access_token);
  vault.clock.advance(1900_000);
  await oidc.clearRequests();
  await oidc.mode({ mode: 'status', status: 503, body: { error: 'temporarily_unavailable' }, times: 1 });

  const stale = await getApp('cc-stale', { minTtl: 2000 });
  expect(stale.status).toBe(200);
  expect(stale.headers.warning).toBe('110 - "stale"');
  expect(stale.body).toMatchObject({ access_token: token, version: first.body.version, expires_in: 1700 });
  expect(await ccRequests()).toHaveLength(1);

  // Within the probe gap: served stale again without asking the provider.
  const again = await getApp('cc-stale', { minTtl: 2000 });
  expect(again.headers.warning).toBe('110 - "stale"');
  expect(again.body.access_token).toBe(token);
  expect(await ccRequests()).toHaveLength(1);

  const renewed = await waitFor(async () => {
    const res = await getApp('cc-stale', { minTtl: 2000 });
    return res.body.access_token !== token ? res : false;
  }, 'the on-demand probe to renew the token', 4000);
  expect(renewed.status).toBe(200);
  expect(renewed.headers.warning).toBeUndefined();
  remember(renewed.body.access_token);
  expect(await ccRequests()).toHaveLength(2);
});

test('DELETE drops the cached app token (204), the next GET mints a new one; DELETE of nothing is 404', async () => {
  const first = await getApp('cc-delete');
  const token = remember(first.body.access_token);
  await oidc.clearRequests();

  const deleted = await deleteApp('cc-delete');
  expect(deleted.status).toBe(204);
  expect(await inspect.exists(appRecord('cc-delete'))).toBe(0);
  expect(vault.logs.audit()).toContainEqual(expect.objectContaining({ action: 'credential.delete', caller: 'writer', user: '_app', provider: 'cc-delete', outcome: 'ok' }));

  const again = await getApp('cc-delete');
  expect(again.status).toBe(200);
  const newToken = remember(again.body.access_token);
  expect(newToken).not.toBe(token);
  expect(again.body.version).toBeGreaterThan(first.body.version as number);
  expect(await ccRequests()).toHaveLength(1);

  expect((await deleteApp('cc-delete')).status).toBe(204);
  expect((await deleteApp('cc-delete')).status).toBe(404);
});

test('the scheduler renews the app token before it expires, with no caller asking', async () => {
  const scheduled = await startVault({
    redis,
    keyPrefix: 'tv:sched:',
    clock: TestClock.realTime(),
    scheduler: true,
    deps: { pollMs: 100 },
    config: (standard) => {
      (standard.providers as Record<string, unknown>)['cc-sched'] = appProvider(shortOidc);
      return standard;
    },
  });
  try {
    const first = await request(scheduled.app).get('/tokens/_app/cc-sched').set('Authorization', bearer(scheduled.keys.reader));
    expect(first.status).toBe(200);
    // Floored to whole seconds, on a clock that moves.
    expect([SHORT_TTL_SECONDS - 1, SHORT_TTL_SECONDS]).toContain(first.body.expires_in);
    const token = remember(first.body.access_token);
    const key = appRecord('cc-sched', scheduled);

    // Short-lived tokens are due at 80% of their life: 4.8 s here.
    await waitFor(async () => Number(await inspect.hget(key, 'version')) > (first.body.version as number), 'the scheduler to renew the app token', 10_000);
    const [mint, renewal] = await ccRequests(shortOidc);
    expect(renewal!.receivedAt - mint!.receivedAt).toBeLessThan(SHORT_TTL_SECONDS * 1000);
    expect(renewal!.form).toEqual({ grant_type: 'client_credentials', scope: 'api:read' });

    const second = await request(scheduled.app).get('/tokens/_app/cc-sched').set('Authorization', bearer(scheduled.keys.reader));
    const renewed = remember(second.body.access_token);
    expect(renewed).not.toBe(token);
    expect(await shortOidc.active(renewed, 'cc')).toBe(true);
  } finally {
    await scheduled.close();
  }
});

test('GET /tokens/_app/github (not a client-credentials provider) is 400; PUT of a credential for an app provider is 400; a caller without the provider is 403', async () => {
  const notApp = await getApp('github');
  expect(notApp.status).toBe(400);
  expect(notApp.body.error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('client_credentials') });
  expect((await deleteApp('github')).status).toBe(400);

  const put = await request(http.url)
    .put('/tokens/u1/cc')
    .set('Authorization', bearer(vault.keys.writer))
    .send({ type: 'oauth2', access_token: 'put-by-hand-token-value', expires_in: 3600 });
  expect(put.status).toBe(400);
  expect(put.body.error.message).toContain('/tokens/_app/cc');
  expect(await inspect.exists(vault.deps.keys.credential('u1', 'cc'))).toBe(0);

  const forbidden = await getApp('cc', { key: vault.keys.githubOnly });
  expect(forbidden.status).toBe(403);
  expect(forbidden.body.error).toMatchObject({ code: 'forbidden' });
  expect((await getApp('nope')).status).toBe(404);
  expect(await ccRequests()).toHaveLength(0);
});

test('app tokens are sealed in Redis like any credential: no token or client secret in any key or value, nor in the logs', async () => {
  expect(minted.size).toBeGreaterThanOrEqual(6);
  const { keys, values } = await dumpRedis(inspect, 'tv:');
  expect(keys).toContain(appRecord('cc'));
  const secrets = { ...Object.fromEntries(minted), clientSecret: oidc.clients.cc.secret };
  expect(secretsIn(values, secrets)).toEqual([]);
  expect(secretsIn(vault.logs.text(), secrets)).toEqual([]);
  // The record's clear metadata says what it is, and nothing more.
  const record = await inspect.hgetall(appRecord('cc'));
  expect(record).toMatchObject({ state: 'active', version: expect.any(String) });
});
