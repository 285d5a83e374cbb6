import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { Redis } from 'ioredis';
import request from 'supertest';
import type { DomainEvent } from '../../../src/events/event-bus';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { OidcServer } from '../../helpers/providers/oidc';
import { ScriptedTokenServer, type ScriptedRequest, type ScriptedResponse } from '../../helpers/providers/scripted-token-server';
import { RedisServer } from '../../helpers/redis-server';

/**
 * On-demand refresh through the HTTP API (DESIGN §4 GET with min_ttl, POST .../refresh; §7): when a
 * GET refreshes, what reaches the provider, what each provider answer becomes for the caller, and
 * that writes made while a refresh is in flight win.
 */

const GITHUB_SECRET = 'gh-client-secret-value';
const GOOGLE_OLD = 'google-secret-old-7d1e';
const GOOGLE_NEW = 'google-secret-new-2b9c';
const SERIAL_SECRET = 'serial-secret-value';
const DOWN_SECRET = 'down-secret-value';
/** provider.refresh.leaseSeconds 5 → provider calls time out after 1666 ms. */
const LEASE_SECONDS = 5;

let redis: RedisServer;
let inspect: Redis;
let github: ScriptedTokenServer;
let google: ScriptedTokenServer;
let serial: ScriptedTokenServer;
let elsewhere: ScriptedTokenServer;
let oidc: OidcServer;
let vault: TestVault;
let server: Server;
let downUrl: string;
const events: DomainEvent[] = [];
/** Every token and secret this file hands to the vault or the vault receives: none may be logged. */
const secrets = new Set<string>([GITHUB_SECRET, GOOGLE_OLD, GOOGLE_NEW, SERIAL_SECRET, DOWN_SECRET]);

function token(kind: string): string {
  const value = `${kind}-${randomBytes(8).toString('hex')}`;
  secrets.add(value);
  return value;
}

beforeAll(async () => {
  [redis, github, google, serial, elsewhere, oidc] = await Promise.all([
    RedisServer.start(),
    ScriptedTokenServer.start(),
    ScriptedTokenServer.start(),
    ScriptedTokenServer.start(),
    ScriptedTokenServer.start(),
    OidcServer.start({ accessTtlSeconds: 60, rotation: true }),
  ]);
  secrets.add(oidc.clients.basic.secret);
  const down = await ScriptedTokenServer.start();
  downUrl = down.url;
  await down.stop();
  inspect = redis.client();
  vault = await startVault({
    redis,
    clock: TestClock.realTime(),
    logLevel: 'debug',
    config: (standard) => {
      const providers = standard.providers as Record<string, Record<string, unknown>>;
      providers.github!.tokenUrl = github.url;
      Object.assign(providers.google!, { tokenUrl: google.url, clientSecret: [GOOGLE_OLD, GOOGLE_NEW], clientAuth: 'client_secret_basic' });
      providers.oidc = { type: 'oauth2', clientId: oidc.clients.basic.id, clientSecret: oidc.clients.basic.secret, clientAuth: 'client_secret_basic', tokenUrl: oidc.tokenUrl };
      providers.serial = { type: 'oauth2', clientId: 'serial-client', clientSecret: SERIAL_SECRET, tokenUrl: serial.url, maxConcurrency: 1 };
      providers.down = { type: 'oauth2', clientId: 'down-client', clientSecret: DOWN_SECRET, tokenUrl: downUrl };
      standard.refresh = { leaseSeconds: LEASE_SECONDS, failedEventAfterSeconds: 0 };
      return standard;
    },
  });
  vault.deps.events.subscribe((event) => events.push(event));
  server = vault.app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await vault?.close();
  inspect?.disconnect();
  await Promise.all([github?.stop(), google?.stop(), serial?.stop(), elsewhere?.stop(), oidc?.stop()]);
  await redis?.stop();
});

beforeEach(() => {
  for (const scripted of [github, google, serial, elsewhere]) {
    expect(scripted.pending).toBe(0);
    scripted.clearRequests();
    scripted.setDefault({ status: 500, body: { error: 'server_error', error_description: 'no scripted response' } });
  }
});

// ---- helpers ---------------------------------------------------------------------------------

interface PutBody {
  access_token: string;
  refresh_token?: string;
  expires_in?: number;
  scope?: string;
}

const put = (user: string, provider: string, body: PutBody) =>
  request(server).put(`/tokens/${user}/${provider}`).set('Authorization', vault.auth(vault.keys.writer)).send({ type: 'oauth2', ...body });
const get = (user: string, provider: string, minTtl?: number) =>
  request(server)
    .get(`/tokens/${user}/${provider}${minTtl === undefined ? '' : `?min_ttl=${minTtl}`}`)
    .set('Authorization', vault.auth(vault.keys.reader));
const forceRefresh = (user: string, provider: string, key = vault.keys.writer) =>
  request(server).post(`/tokens/${user}/${provider}/refresh`).set('Authorization', vault.auth(key));
const del = (user: string, provider: string) => request(server).delete(`/tokens/${user}/${provider}`).set('Authorization', vault.auth(vault.keys.writer));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function ok(body: { access_token: string; refresh_token?: string; expires_in?: number | string; scope?: string; token_type?: string }, delayMs?: number): ScriptedResponse {
  return { status: 200, body: { token_type: 'Bearer', ...body }, ...(delayMs ? { delayMs } : {}) };
}

function eventsFor(user: string): DomainEvent[] {
  return events.filter((event) => 'user' in event && event.user === user);
}

async function stored(user: string, provider: string): Promise<Record<string, string>> {
  return inspect.hgetall(vault.deps.keys.credential(user, provider));
}

async function dueScore(user: string, provider: string): Promise<string | null> {
  return inspect.zscore(vault.deps.keys.due(user), `${user}:${provider}`);
}

/** A counter or gauge value from /metrics, for the series whose labels include `labels`. */
async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await request(server).get('/metrics')).text;
  let total = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const seen = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => seen[key] === value)) total += Number(match[3]);
  }
  return total;
}

/** The most provider calls in flight at once, each lasting from its arrival to arrival + delayMs. */
function maxInFlight(requests: readonly ScriptedRequest[], delayMs: number): number {
  const edges = requests.flatMap((r) => [
    { at: r.receivedAt, step: 1 },
    { at: r.receivedAt + delayMs, step: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.step - b.step);
  let current = 0;
  let most = 0;
  for (const edge of edges) {
    current += edge.step;
    most = Math.max(most, current);
  }
  return most;
}

// ---- when a GET refreshes ----------------------------------------------------------------------

describe('min_ttl', () => {
  test('a GET refreshes only when the token expires within min(min_ttl, lifetime / 2)', async () => {
    const first = token('at');
    const rt = token('rt');
    expect((await put('ttl1', 'github', { access_token: first, refresh_token: rt, expires_in: 200 })).status).toBe(201);

    // 200 s left of a 200 s life: min(3600, 100) = 100 s → not yet.
    const capped = await get('ttl1', 'github', 3600);
    expect(capped.status).toBe(200);
    expect(capped.body.access_token).toBe(first);
    expect(github.requests).toHaveLength(0);

    vault.clock.advance(130_000); // ~70 s left
    for (const minTtl of [undefined, 30, 60]) {
      const answer = await get('ttl1', 'github', minTtl);
      expect({ status: answer.status, token: answer.body.access_token, warning: answer.headers.warning }).toEqual({ status: 200, token: first, warning: undefined });
    }
    expect(github.requests).toHaveLength(0);

    // min(80, 100) = 80 s ≥ 70 s left → refresh first.
    const second = token('at');
    github.respond(ok({ access_token: second, expires_in: 100 }));
    const refreshed = await get('ttl1', 'github', 80);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.access_token).toBe(second);
    expect(refreshed.body.expires_in).toBeGreaterThanOrEqual(99);
    expect(github.requests).toHaveLength(1);
    expect(github.requests[0]!.form.refresh_token).toBe(rt);

    // The default min_ttl is 30 s: 25 s left of a 100 s life → refreshed again.
    vault.clock.advance(75_000);
    const third = token('at');
    github.respond(ok({ access_token: third, expires_in: 100 }));
    const byDefault = await get('ttl1', 'github');
    expect(byDefault.body.access_token).toBe(third);
    expect(github.requests).toHaveLength(2);
    // No refresh_token in the answers: the first one is still the one used.
    expect(github.requests[1]!.form.refresh_token).toBe(rt);
  });

  test('a just-refreshed 60 s token is served to min_ttl=3600 without another refresh (the half-life cap)', async () => {
    const fresh = token('at');
    await put('ttl2', 'github', { access_token: token('at'), refresh_token: token('rt'), expires_in: 0 });
    github.respond(ok({ access_token: fresh, refresh_token: token('rt'), expires_in: 60 }));

    const first = await get('ttl2', 'github', 3600);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ access_token: fresh, token_type: 'Bearer', type: 'oauth2' });
    expect(first.body.expires_in).toBeGreaterThanOrEqual(59);
    for (let i = 0; i < 3; i++) {
      const again = await get('ttl2', 'github', 3600);
      expect(again.body).toMatchObject({ access_token: fresh, version: first.body.version });
    }
    expect(github.requests).toHaveLength(1);
  });

  test('a token without an expiry is never refreshed on demand', async () => {
    const forever = token('at');
    await put('ttl3', 'github', { access_token: forever, refresh_token: token('rt') });
    const answer = await get('ttl3', 'github', 999_999_999);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ access_token: forever, expires_at: null, expires_in: null });
    expect(github.requests).toHaveLength(0);
  });
});

test('100 concurrent GETs on an expired token: one provider call, all 100 get the new token', async () => {
  const rt = token('rt');
  const fresh = token('at');
  const before = await metric('token_vault_refresh_total', { provider: 'github', trigger: 'on_demand', outcome: 'ok' });
  await put('crowd', 'github', { access_token: token('at'), refresh_token: rt, expires_in: 0 });
  github.respond(ok({ access_token: fresh, refresh_token: token('rt'), expires_in: 3600 }, 300));

  const answers = await Promise.all(Array.from({ length: 100 }, () => get('crowd', 'github')));

  expect(github.requests).toHaveLength(1);
  expect(github.requests[0]!.form).toEqual({ grant_type: 'refresh_token', refresh_token: rt, client_id: 'gh-client', client_secret: GITHUB_SECRET });
  expect(github.requests[0]!.headers.accept).toBe('application/json');
  expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
  expect(new Set(answers.map((a) => a.body.access_token))).toEqual(new Set([fresh]));
  expect(new Set(answers.map((a) => a.body.version)).size).toBe(1);
  expect(eventsFor('crowd').filter((e) => e.type === 'token.refreshed')).toHaveLength(1);
  expect(await metric('token_vault_refresh_total', { provider: 'github', trigger: 'on_demand', outcome: 'ok' })).toBe(before + 1);
});

test('oidc-provider with rotation: every rotated refresh token is stored and used once, the old one never again', async () => {
  await oidc.reset();
  const issued = await oidc.issue({ accountId: 'rot-user' });
  secrets.add(issued.access_token).add(issued.refresh_token);
  await put('rot', 'oidc', { access_token: issued.access_token, refresh_token: issued.refresh_token, expires_in: issued.expires_in });

  const served = [issued.access_token];
  for (let cycle = 0; cycle < 4; cycle++) {
    if (cycle % 2 === 0) {
      expect((await forceRefresh('rot', 'oidc')).status).toBe(200);
    } else {
      vault.clock.advance(45_000); // 15 s left of 60 → inside min(30, 30)
    }
    const answer = await get('rot', 'oidc');
    expect(answer.status).toBe(200);
    expect(answer.headers.warning).toBeUndefined();
    served.push(answer.body.access_token as string);
    secrets.add(answer.body.access_token as string);
  }

  const requests = (await oidc.requests()).filter((r) => r.path === '/token');
  const sent = requests.map((r) => r.form.refresh_token!);
  sent.forEach((value) => secrets.add(value));
  expect(requests).toHaveLength(4);
  expect(sent[0]).toBe(issued.refresh_token);
  expect(new Set(sent).size).toBe(4);
  for (const r of requests) {
    expect(r.form.grant_type).toBe('refresh_token');
    expect(r.form.client_secret).toBeUndefined();
    expect(Buffer.from(r.headers.authorization!.replace(/^Basic /, ''), 'base64').toString()).toBe('basic-client:basic-secret');
  }
  expect(new Set(served).size).toBe(5);
  const calls = await oidc.calls();
  expect(calls.refresh).toMatchObject({ total: 4, success: 4, errors: {} });
});

// ---- transient failures ----------------------------------------------------------------------

describe('when the provider is down', () => {
  test('a still-valid token is served with Warning: 110 - "stale"; a second GET within 2 s does not call again', async () => {
    const old = token('at');
    await put('stale1', 'github', { access_token: old, refresh_token: token('rt'), expires_in: 200 });
    vault.clock.advance(150_000); // 50 s left
    github.respond({ status: 503, body: 'unavailable' });

    const answer = await get('stale1', 'github', 60);
    expect(answer.status).toBe(200);
    expect(answer.headers.warning).toBe('110 - "stale"');
    expect(answer.body.access_token).toBe(old);
    expect(answer.headers['cache-control']).toBe('no-store');

    const again = await get('stale1', 'github', 60);
    expect({ status: again.status, warning: again.headers.warning, token: again.body.access_token }).toEqual({ status: 200, warning: '110 - "stale"', token: old });
    expect(github.requests).toHaveLength(1);
    // Served stale, still active, and scheduled for a retry.
    expect((await stored('stale1', 'github')).state).toBe('active');
    expect((await stored('stale1', 'github')).failures).toBe('1');
  });

  const httpDate = () => new Date(Date.now() + 20_000).toUTCString();
  test.each<[string, string, () => ScriptedResponse | null, [number, number]]>([
    ['HTTP 500', 'github', () => ({ status: 500, body: { error: 'server_error' } }), [2, 2]],
    ['HTTP 503 with Retry-After: 7', 'github', () => ({ status: 503, headers: { 'retry-after': '7' } }), [7, 7]],
    ['HTTP 429 with Retry-After: 11', 'github', () => ({ status: 429, headers: { 'retry-after': '11' } }), [11, 11]],
    ['HTTP 429 with Retry-After as a date 20 s ahead', 'github', () => ({ status: 429, headers: { 'retry-after': httpDate() } }), [18, 20]],
    ['a provider that never answers (timeout)', 'github', () => ({ status: 200, hang: true }), [2, 2]],
    ['connection refused', 'down', () => null, [2, 2]],
  ])('an expired token and %s → 503 provider_unavailable with Retry-After', async (_name, provider, response, [low, high]) => {
    const user = `down-${randomBytes(3).toString('hex')}`;
    await put(user, provider, { access_token: token('at'), refresh_token: token('rt'), expires_in: 0 });
    const scripted = response();
    if (scripted) github.respond(scripted);

    const answer = await get(user, provider);
    expect(answer.status).toBe(503);
    expect(answer.body.error.code).toBe('provider_unavailable');
    expect(answer.body.access_token).toBeUndefined();
    const retryAfter = Number(answer.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(low);
    expect(retryAfter).toBeLessThanOrEqual(high);
    expect(github.requests).toHaveLength(provider === 'github' ? 1 : 0);
  });

  test('a failing credential is probed at most once per 2 s; the first success emits token.refresh_recovered', async () => {
    const rt = token('rt');
    await put('probe', 'github', { access_token: token('at'), refresh_token: rt, expires_in: 0 });
    github.setDefault({ status: 503, body: 'down' });

    const first = await get('probe', 'github');
    const failedAt = Date.now();
    expect(first.status).toBe(503);
    expect(eventsFor('probe').map((e) => e.type)).toEqual(['token.refresh_failed']);
    expect(eventsFor('probe')[0]).toMatchObject({ provider: 'github', reason: 'HTTP 503', attempts: 1 });

    // Five at once, then one more after them: none may reach the provider.
    const burst = [...(await Promise.all(Array.from({ length: 5 }, () => get('probe', 'github')))), await get('probe', 'github')];
    for (const answer of burst) {
      expect(answer.status).toBe(503);
      expect(answer.body.error.code).toBe('provider_unavailable');
      expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(answer.headers['retry-after'])).toBeLessThanOrEqual(2);
    }
    expect(Date.now() - failedAt).toBeLessThan(1900); // the burst was inside the 2 s window
    expect(github.requests).toHaveLength(1);

    // The provider is back: after 2 s the next GET probes it and recovers.
    const fresh = token('at');
    github.setDefault(ok({ access_token: fresh, expires_in: 3600 }));
    await sleep(Math.max(0, failedAt + 2100 - Date.now()));
    const recovered = await get('probe', 'github');
    expect(recovered.status).toBe(200);
    expect(recovered.body.access_token).toBe(fresh);
    expect(github.requests).toHaveLength(2);
    expect(github.requests[1]!.form.refresh_token).toBe(rt);
    expect(eventsFor('probe').map((e) => e.type)).toEqual(['token.refresh_failed', 'token.refreshed', 'token.refresh_recovered']);
    expect(eventsFor('probe')[2]).toMatchObject({ attempts: 1, failing_since: expect.any(String) });
    expect((await stored('probe', 'github')).failures).toBeUndefined();
  });
});

// ---- answers the vault cannot act on -----------------------------------------------------------

test('invalid_grant → 409 reauth_required; no provider call after that until a new PUT', async () => {
  await put('dead', 'github', { access_token: token('at'), refresh_token: token('rt'), expires_in: 0 });
  github.respond({ status: 400, body: { error: 'invalid_grant', error_description: 'refresh token revoked' } });

  const answer = await get('dead', 'github');
  expect(answer.status).toBe(409);
  expect(answer.body.error.code).toBe('reauth_required');
  expect((await stored('dead', 'github')).state).toBe('reauth_required');
  expect(await dueScore('dead', 'github')).toBeNull();
  expect(eventsFor('dead')).toEqual([{ type: 'token.reauth_required', id: expect.stringMatching(/^msg_/), user: 'dead', provider: 'github', reason: expect.any(String) }]);

  for (let i = 0; i < 3; i++) expect((await get('dead', 'github', 0)).status).toBe(409);
  expect((await forceRefresh('dead', 'github')).status).toBe(409);
  expect(github.requests).toHaveLength(1);

  const reconnected = token('at');
  const again = await put('dead', 'github', { access_token: reconnected, refresh_token: token('rt'), expires_in: 3600 });
  expect(again.status).toBe(200);
  expect(again.body.state).toBe('active');
  expect((await get('dead', 'github')).body.access_token).toBe(reconnected);
  expect(await dueScore('dead', 'github')).not.toBeNull();
  expect(github.requests).toHaveLength(1);
});

describe('provider errors the vault cannot act on', () => {
  const cases: [string, string, () => ScriptedResponse[]][] = [
    ['invalid_client on every client secret', 'google', () => [{ status: 401, body: { error: 'invalid_client' } }, { status: 401, body: { error: 'invalid_client' } }]],
    ['another OAuth error (invalid_scope)', 'github', () => [{ status: 400, body: { error: 'invalid_scope' } }]],
    ['a redirect', 'github', () => [{ status: 302, headers: { location: `${elsewhere.origin}/token` } }]],
    ['an answer without access_token', 'github', () => [ok({ access_token: '' })]],
  ];

  test.each(cases)('%s: an expired token → 502 provider_error', async (_name, provider, responses) => {
    const user = `err-${randomBytes(3).toString('hex')}`;
    await put(user, provider, { access_token: token('at'), refresh_token: token('rt'), expires_in: 0 });
    const scripted = provider === 'google' ? google : github;
    scripted.respond(...responses());

    const answer = await get(user, provider);
    expect(answer.status).toBe(502);
    expect(answer.body.error.code).toBe('provider_error');
    expect(answer.body.access_token).toBeUndefined();
    expect(scripted.requests).toHaveLength(responses().length);
    expect(elsewhere.requests).toHaveLength(0);
  });

  test.each(cases)('%s: a still-valid token is served with Warning: 110 - "stale"', async (_name, provider, responses) => {
    const user = `errv-${randomBytes(3).toString('hex')}`;
    const old = token('at');
    await put(user, provider, { access_token: old, refresh_token: token('rt'), expires_in: 3600 });
    (provider === 'google' ? google : github).respond(...responses());

    const answer = await get(user, provider, 7200); // min(7200, 1800): a 3600 s token is not inside
    expect(answer.body.access_token).toBe(old);
    expect(answer.headers.warning).toBeUndefined();
    vault.clock.advance(3_590_000);
    const stale = await get(user, provider);
    vault.clock.advance(-3_590_000);
    expect({ status: stale.status, warning: stale.headers.warning, token: stale.body.access_token }).toEqual({ status: 200, warning: '110 - "stale"', token: old });
    expect(elsewhere.requests).toHaveLength(0);
  });

  test('invalid_client: both client secrets are tried in order, and operators get an error log line', async () => {
    await put('secrets1', 'google', { access_token: token('at'), refresh_token: token('rt'), expires_in: 0 });
    google.respond({ status: 401, body: { error: 'invalid_client' } }, { status: 401, body: { error: 'invalid_client' } });
    expect((await get('secrets1', 'google')).status).toBe(502);
    const used = google.requests.map((r) => Buffer.from(r.headers.authorization!.replace(/^Basic /, ''), 'base64').toString());
    expect(used).toEqual([`google-client:${GOOGLE_OLD}`, `google-client:${GOOGLE_NEW}`]);
    expect(vault.logs.entries().some((e) => e.level === 50 && e.provider === 'google' && String(e.msg).includes('invalid_client'))).toBe(true);
  });

  test('invalid_client on the first secret, success on the second: 200 with the new token', async () => {
    const fresh = token('at');
    await put('secrets2', 'google', { access_token: token('at'), refresh_token: token('rt'), expires_in: 0 });
    google.respond({ status: 401, body: { error: 'invalid_client' } }, ok({ access_token: fresh, expires_in: 3600 }));
    const answer = await get('secrets2', 'google');
    expect(answer.status).toBe(200);
    expect(answer.body.access_token).toBe(fresh);
    expect(google.requests).toHaveLength(2);
    expect(vault.logs.entries().some((e) => e.level === 40 && e.provider === 'google' && e.secret === 1)).toBe(true);
  });
});

// ---- POST /tokens/:user/:provider/refresh --------------------------------------------------------

describe('POST /tokens/:user/:provider/refresh', () => {
  test('refreshes a valid token now: 200 public view with a new version; rotation, scope and a form answer are stored', async () => {
    const rt1 = token('rt');
    const rt2 = token('rt');
    const at2 = token('at');
    const created = await put('force1', 'github', { access_token: token('at'), refresh_token: rt1, expires_in: 3600, scope: 'repo' });
    github.respond(ok({ access_token: at2, refresh_token: rt2, expires_in: 120, scope: 'repo user', token_type: 'bearer' }));

    const answer = await forceRefresh('force1', 'github');
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ user: 'force1', provider: 'github', type: 'oauth2', state: 'active', scope: 'repo user' });
    expect(answer.body.version).toBeGreaterThan(created.body.version);
    expect(answer.headers.etag).toBe(`"${answer.body.version}"`);
    expect(Date.parse(answer.body.expires_at) - vault.clock.now()).toBeGreaterThan(115_000);
    expect(JSON.stringify(answer.body)).not.toContain(at2);
    expect(JSON.stringify(answer.body)).not.toContain(rt2);
    expect(github.requests.map((r) => r.form.refresh_token)).toEqual([rt1]);

    const view = await get('force1', 'github');
    expect(view.body).toMatchObject({ access_token: at2, token_type: 'bearer', scope: 'repo user', version: answer.body.version });

    // GitHub-style form answer without expires_in or refresh_token: no expiry, the rotated rt2 is kept.
    const at3 = token('at');
    github.respond({ status: 200, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `access_token=${at3}&token_type=bearer` });
    const second = await forceRefresh('force1', 'github');
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ expires_at: null, scope: 'repo user' });
    expect((await get('force1', 'github')).body).toMatchObject({ access_token: at3, expires_in: null });

    github.respond(ok({ access_token: token('at'), expires_in: '90' }));
    const third = await forceRefresh('force1', 'github');
    expect(third.status).toBe(200);
    expect(Date.parse(third.body.expires_at) - vault.clock.now()).toBeGreaterThan(85_000);
    expect(github.requests.map((r) => r.form.refresh_token)).toEqual([rt1, rt2, rt2]);
  });

  test('404 for a credential that does not exist, 400 for OAuth 1.0a, 409 without a refresh token, 403 without tokens:write', async () => {
    expect((await forceRefresh('nobody', 'github')).body.error.code).toBe('not_found');
    expect((await forceRefresh('nobody', 'github')).status).toBe(404);

    const oauth1 = await request(server)
      .put('/tokens/force2/twitter')
      .set('Authorization', vault.auth(vault.keys.writer))
      .send({ type: 'oauth1', oauth_token: token('ot'), oauth_token_secret: token('ots') });
    expect(oauth1.status).toBe(201);
    const refused = await forceRefresh('force2', 'twitter');
    expect({ status: refused.status, code: refused.body.error.code }).toEqual({ status: 400, code: 'invalid_request' });

    await put('force2', 'github', { access_token: token('at'), expires_in: 3600 });
    const noRefreshToken = await forceRefresh('force2', 'github');
    expect({ status: noRefreshToken.status, code: noRefreshToken.body.error.code }).toEqual({ status: 409, code: 'reauth_required' });

    await put('force3', 'github', { access_token: token('at'), refresh_token: token('rt'), expires_in: 3600 });
    expect((await forceRefresh('force3', 'github', vault.keys.reader)).status).toBe(403);
    expect(github.requests).toHaveLength(0);
  });

  test('409 when the provider answers invalid_grant, 503 with Retry-After when it is down, 502 on other errors', async () => {
    await put('force4', 'github', { access_token: token('at'), refresh_token: token('rt'), expires_in: 3600 });
    github.respond(
      { status: 503, headers: { 'retry-after': '9' } },
      { status: 500 },
      { status: 400, body: { error: 'unsupported_grant_type' } },
      { status: 400, body: { error: 'invalid_grant' } },
    );
    // A forced refresh is not held back by the 2 s probe gap.
    const unavailable = await forceRefresh('force4', 'github');
    expect({ status: unavailable.status, code: unavailable.body.error.code, retryAfter: unavailable.headers['retry-after'] }).toEqual({
      status: 503,
      code: 'provider_unavailable',
      retryAfter: '9',
    });
    const noRetryAfter = await forceRefresh('force4', 'github');
    expect({ status: noRetryAfter.status, retryAfter: noRetryAfter.headers['retry-after'] }).toEqual({ status: 503, retryAfter: '2' });
    const providerError = await forceRefresh('force4', 'github');
    expect({ status: providerError.status, code: providerError.body.error.code }).toEqual({ status: 502, code: 'provider_error' });
    const dead = await forceRefresh('force4', 'github');
    expect({ status: dead.status, code: dead.body.error.code }).toEqual({ status: 409, code: 'reauth_required' });
    expect(github.requests).toHaveLength(4);
    expect((await stored('force4', 'github')).state).toBe('reauth_required');
  });
});

// ---- writes during a refresh --------------------------------------------------------------------

describe('a write while a refresh is at the provider wins', () => {
  test('PUT during a slow refresh: the GET and every later one get the PUT token; the provider answer is discarded', async () => {
    const putRt = token('rt');
    const putAt = token('at');
    const lost = token('at');
    const lostRt = token('rt');
    await put('race1', 'github', { access_token: token('at'), refresh_token: token('rt'), expires_in: 0 });
    github.respond(ok({ access_token: lost, refresh_token: lostRt, expires_in: 3600 }, 600));

    const pending = get('race1', 'github').then((r) => r);
    await waitFor(() => github.requests.length === 1, 'the refresh to reach the provider');
    const replaced = await put('race1', 'github', { access_token: putAt, refresh_token: putRt, expires_in: 3600 });
    expect(replaced.status).toBe(200);

    const answer = await pending;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ access_token: putAt, version: replaced.body.version });
    expect((await get('race1', 'github')).body).toMatchObject({ access_token: putAt, version: replaced.body.version });
    expect(eventsFor('race1').filter((e) => e.type === 'token.refreshed')).toHaveLength(0);

    // The refresh token stored is the PUT's, not the one the discarded answer carried.
    github.respond(ok({ access_token: token('at'), expires_in: 3600 }));
    expect((await forceRefresh('race1', 'github')).status).toBe(200);
    expect(github.requests[1]!.form.refresh_token).toBe(putRt);
  });

  test.each<[string, ScriptedResponse]>([
    ['succeeds', ok({ access_token: token('at'), refresh_token: token('rt'), expires_in: 3600 }, 600)],
    ['fails', { status: 503, body: 'down', delayMs: 600 }],
  ])('DELETE during a slow forced refresh that %s: 404, and the credential stays deleted', async (_name, response) => {
    const user = `race-${randomBytes(3).toString('hex')}`;
    await put(user, 'github', { access_token: token('at'), refresh_token: token('rt'), expires_in: 0 });
    github.respond(response);

    const pending = forceRefresh(user, 'github').then((r) => r);
    await waitFor(() => github.requests.length === 1, 'the refresh to reach the provider');
    expect((await del(user, 'github')).status).toBe(204);

    const answer = await pending;
    expect({ status: answer.status, code: answer.body.error?.code }).toEqual({ status: 404, code: 'not_found' });
    expect(await inspect.exists(vault.deps.keys.credential(user, 'github'))).toBe(0);
    expect(await dueScore(user, 'github')).toBeNull();
    expect(await inspect.hexists(vault.deps.keys.leases(user), `${user}:github`)).toBe(0);
    expect((await get(user, 'github')).status).toBe(404);
    // The delete is the last word: no refresh event after it.
    expect(eventsFor(user).map((e) => e.type)).toEqual(['token.revoked']);
  });
});

test("on-demand refreshes respect the provider's maxConcurrency (DESIGN §3: provider calls in flight per replica)", async () => {
  const users = ['mc1', 'mc2', 'mc3'];
  for (const user of users) await put(user, 'serial', { access_token: token('at'), refresh_token: token('rt'), expires_in: 0 });
  serial.setDefault(ok({ access_token: 'at-serial', expires_in: 3600 }, 300));

  const answers = await Promise.all(users.map((user) => get(user, 'serial')));
  expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
  expect(serial.requests).toHaveLength(3);
  expect(maxInFlight(serial.requests, 300)).toBe(1);
});

test('no token, refresh token or client secret appears in any event or log line', () => {
  expect(events.length).toBeGreaterThan(10);
  const logs = vault.logs.text();
  expect(logs.length).toBeGreaterThan(1000);
  const eventText = JSON.stringify(events);
  for (const secret of secrets) {
    expect({ secret, inEvents: eventText.includes(secret), inLogs: logs.includes(secret) }).toEqual({ secret, inEvents: false, inLogs: false });
  }
  for (const event of events) {
    expect(Object.keys(event).filter((key) => /token|secret/i.test(key))).toEqual([]);
  }
});
