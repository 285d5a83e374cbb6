import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { Redis } from 'ioredis';
import request from 'supertest';
import type { DomainEvent } from '../../../src/events/event-bus';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { ScriptedTokenServer, type ScriptedRequest, type ScriptedResponse } from '../../helpers/providers/scripted-token-server';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Proactive refresh (DESIGN §7) with the scheduler running and polling every 100 ms: tokens of a
 * few seconds are refreshed before they expire with no caller asking, failures back off, dead
 * refresh tokens stop the schedule, concurrency limits hold, stale schedule entries cost no
 * provider call, and the refresh metrics match what is in Redis.
 *
 * refresh: skew 1 s, no jitter, 2 workers, backoff capped at 2 s, token.refresh_failed on the
 * first failure. Every provider is its own scripted token endpoint, so call counts are per scenario.
 */

const MAX_BACKOFF_SECONDS = 2;
const WORKERS = 2;
/** What scheduling adds to a backoff delay: the 100 ms poll, a walk over the shards, a loaded CI machine. */
const SLACK_MS = 450;

const PROVIDERS = ['sched', 'flaky', 'limited', 'revoked', 'serial', 'wide', 'stale'] as const;
type ProviderId = (typeof PROVIDERS)[number];

let redis: RedisServer;
let inspect: Redis;
let vault: TestVault;
let server: Server;
const providers = {} as Record<ProviderId, ScriptedTokenServer>;
const events: DomainEvent[] = [];

beforeAll(async () => {
  redis = await RedisServer.start();
  inspect = redis.client();
  for (const id of PROVIDERS) providers[id] = await ScriptedTokenServer.start();
  vault = await startVault({
    redis,
    clock: TestClock.realTime(),
    scheduler: true,
    deps: { pollMs: 100 },
    config: (standard) => {
      const configured = standard.providers as Record<string, Record<string, unknown>>;
      for (const id of PROVIDERS) {
        configured[id] = {
          type: 'oauth2',
          clientId: `${id}-client`,
          clientSecret: `${id}-secret`,
          tokenUrl: providers[id].url,
          maxConcurrency: id === 'serial' ? 1 : 16,
        };
      }
      standard.refresh = { skewSeconds: 1, jitterSeconds: 0, workers: WORKERS, leaseSeconds: 5, maxBackoffSeconds: MAX_BACKOFF_SECONDS, failedEventAfterSeconds: 0 };
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
  await Promise.all(Object.values(providers).map((p) => p.stop()));
  await redis?.stop();
});

// ---- helpers ---------------------------------------------------------------------------------

const token = (kind: string) => `${kind}-${randomBytes(8).toString('hex')}`;

const put = (user: string, provider: ProviderId, body: { access_token: string; refresh_token?: string; expires_in?: number }) =>
  request(server).put(`/tokens/${user}/${provider}`).set('Authorization', vault.auth(vault.keys.writer)).send({ type: 'oauth2', ...body });
const get = (user: string, provider: ProviderId) => request(server).get(`/tokens/${user}/${provider}`).set('Authorization', vault.auth(vault.keys.reader));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

function ok(body: { access_token: string; refresh_token?: string; expires_in?: number }, delayMs?: number): ScriptedResponse {
  return { status: 200, body: { token_type: 'Bearer', ...body }, ...(delayMs ? { delayMs } : {}) };
}

const eventTypes = (user: string) => events.filter((e) => 'user' in e && e.user === user).map((e) => e.type);

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await request(server).get('/metrics')).text;
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const seen = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => seen[key] === value)) {
      total += Number(match[3]);
      found = true;
    }
  }
  return found ? total : 0;
}

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

const dueScore = (user: string, provider: ProviderId) => inspect.zscore(vault.deps.keys.due(user), `${user}:${provider}`);
const field = (user: string, provider: ProviderId, name: string) => inspect.hget(vault.deps.keys.credential(user, provider), name);

// ---- scenarios ---------------------------------------------------------------------------------

test('a 4 s token is refreshed before it expires with no caller asking; a GET then needs no provider call', async () => {
  const sched = providers.sched;
  const rt = token('rt');
  const fresh = token('at');
  sched.setDefault(ok({ access_token: fresh, refresh_token: token('rt'), expires_in: 3600 }));
  const putAt = Date.now();
  const created = await put('early', 'sched', { access_token: token('at'), refresh_token: rt, expires_in: 4 });
  expect(created.status).toBe(201);
  const expiresAt = Date.parse(created.body.expires_at);

  await waitFor(() => sched.requests.length > 0, 'the scheduled refresh', 8000);
  const [call] = sched.requests;
  expect(call!.form).toMatchObject({ grant_type: 'refresh_token', refresh_token: rt });
  expect(call!.receivedAt).toBeLessThan(expiresAt);
  // Short-lived: at 80% of its life (3.2 s), not at expiry − skew (3 s) nor at once. The 0.8 s
  // before expiry is the slack a loaded CI machine gets.
  expect(call!.receivedAt).toBeGreaterThanOrEqual(putAt + 3150);
  await waitFor(() => eventTypes('early').includes('token.refreshed'), 'token.refreshed', 2000);

  const answer = await get('early', 'sched');
  expect(answer.status).toBe(200);
  expect(answer.body.access_token).toBe(fresh);
  expect(answer.body.expires_in).toBeGreaterThan(3500);
  expect(answer.headers.warning).toBeUndefined();
  await sleep(300);
  expect(sched.requests).toHaveLength(1);
  expect(Number(await dueScore('early', 'sched'))).toBeGreaterThan(Date.now() + 3_500_000);
  expect(await metric('token_vault_refresh_total', { provider: 'sched', trigger: 'scheduled', outcome: 'ok' })).toBe(1);
  expect(await metric('token_vault_refresh_duration_seconds_count', { provider: 'sched' })).toBe(1);
});

test('while the provider answers 500 the scheduler backs off (1 s doubling, jitter in the upper half, capped); then it recovers', async () => {
  const flaky = providers.flaky;
  flaky.setDefault({ status: 500, body: { error: 'server_error' } });
  await put('backoff', 'flaky', { access_token: token('at'), refresh_token: token('rt'), expires_in: 2 });

  // record-failure schedules the next attempt at attempted_at + delay: read each delay exactly.
  const delays: number[] = [];
  for (let failures = 1; failures <= 4; failures++) {
    await waitUntil(async () => (await field('backoff', 'flaky', 'failures')) === String(failures), `failure ${failures}`, 5000);
    const [attemptedAt, refreshAt] = await inspect.hmget(vault.deps.keys.credential('backoff', 'flaky'), 'attempted_at', 'refresh_at');
    delays.push(Number(refreshAt) - Number(attemptedAt));
  }
  const fresh = token('at');
  flaky.setDefault(ok({ access_token: fresh, expires_in: 3600 }));
  expect(flaky.requests).toHaveLength(4);

  // Ceilings 1 s, 2 s, then the 2 s cap (uncapped they would be 4 s and 8 s); jitter over the upper half.
  const ceilings = [1000, 2000, MAX_BACKOFF_SECONDS * 1000, MAX_BACKOFF_SECONDS * 1000];
  delays.forEach((delay, i) => {
    expect({ failure: i + 1, delay, inUpperHalf: delay >= ceilings[i]! / 2 && delay <= ceilings[i]! }).toEqual({ failure: i + 1, delay, inUpperHalf: true });
  });
  // What the provider saw: each attempt after the previous one's delay, with no extra attempts.
  const times = flaky.requests.map((r) => r.receivedAt);
  times.slice(1).forEach((t, i) => {
    const gap = t - times[i]!;
    expect({ attempt: i + 2, gap, afterDelay: gap >= delays[i]! - 20 && gap <= delays[i]! + SLACK_MS }).toEqual({ attempt: i + 2, gap, afterDelay: true });
  });
  expect(eventTypes('backoff')).toEqual(['token.refresh_failed']);
  expect(events.find((e) => 'user' in e && e.user === 'backoff')).toMatchObject({ type: 'token.refresh_failed', provider: 'flaky', reason: 'HTTP 500', attempts: 1 });

  await waitFor(() => eventTypes('backoff').includes('token.refresh_recovered'), 'recovery', 4000);
  expect(flaky.requests).toHaveLength(5);
  expect(eventTypes('backoff')).toEqual(['token.refresh_failed', 'token.refreshed', 'token.refresh_recovered']);
  expect(events.filter((e) => 'user' in e && e.user === 'backoff').at(-1)).toMatchObject({ attempts: 4 });
  expect(await field('backoff', 'flaky', 'failures')).toBeNull();
  expect((await get('backoff', 'flaky')).body.access_token).toBe(fresh);
  await sleep(300);
  expect(flaky.requests).toHaveLength(5);
  expect(await metric('token_vault_refresh_total', { provider: 'flaky', trigger: 'scheduled', outcome: 'transient' })).toBe(4);
});

test("a provider's Retry-After is a floor for the next scheduled attempt", async () => {
  const limited = providers.limited;
  limited.respond({ status: 429, headers: { 'retry-after': '2' }, body: { error: 'slow_down' } });
  limited.setDefault(ok({ access_token: token('at'), expires_in: 3600 }));
  await put('polite', 'limited', { access_token: token('at'), refresh_token: token('rt'), expires_in: 2 });

  await waitFor(() => limited.requests.length >= 2, 'the retry', 7000);
  const [first, second] = limited.requests;
  // Without the floor the first retry comes after 0.5–1 s.
  expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(1980);
  await waitFor(() => eventTypes('polite').includes('token.refresh_recovered'), 'recovery', 2000);
  expect(limited.requests).toHaveLength(2);
});

test('invalid_grant: state reauth_required, the schedule entry is removed, no more provider calls; the state gauges follow', async () => {
  const revoked = providers.revoked;
  revoked.setDefault({ status: 400, body: { error: 'invalid_grant' } });
  const active = await metric('token_vault_credentials', { state: 'active' });
  const reauth = await metric('token_vault_credentials', { state: 'reauth_required' });

  await put('gone-rt', 'revoked', { access_token: token('at'), refresh_token: token('rt'), expires_in: 1 });
  expect(await metric('token_vault_credentials', { state: 'active' })).toBe(active + 1);
  await waitFor(() => eventTypes('gone-rt').includes('token.reauth_required'), 'token.reauth_required', 3000);

  expect(revoked.requests).toHaveLength(1);
  expect(await field('gone-rt', 'revoked', 'state')).toBe('reauth_required');
  expect(await dueScore('gone-rt', 'revoked')).toBeNull();
  expect(await metric('token_vault_credentials', { state: 'active' })).toBe(active);
  expect(await metric('token_vault_credentials', { state: 'reauth_required' })).toBe(reauth + 1);
  await sleep(600);
  expect((await get('gone-rt', 'revoked')).status).toBe(409);
  expect(revoked.requests).toHaveLength(1);
  expect(eventTypes('gone-rt')).toEqual(['token.reauth_required']);
});

test('workers and maxConcurrency bound provider calls in flight; the due backlog shows what waits and drains to 0', async () => {
  const delayMs = 400;
  const { serial, wide } = providers;
  serial.setDefault(ok({ access_token: token('at'), expires_in: 3600 }, delayMs));
  wide.setDefault(ok({ access_token: token('at'), expires_in: 3600 }, delayMs));
  const users = ['c1', 'c2', 'c3'];
  const refreshTokens = new Map<string, string>();
  await Promise.all(
    users.flatMap((user) =>
      (['serial', 'wide'] as const).map((provider) => {
        const rt = token('rt');
        refreshTokens.set(`${user}:${provider}`, rt);
        return put(user, provider, { access_token: token('at'), refresh_token: rt, expires_in: 1 });
      }),
    ),
  );

  await waitFor(() => serial.requests.length + wide.requests.length > 0, 'the first scheduled call', 3000);
  await sleep(delayMs / 2);
  // Two calls in flight (workers), the other four due and waiting.
  const backlog = await metric('token_vault_refresh_due_backlog');
  const oldest = await metric('token_vault_refresh_oldest_due_age_seconds');
  expect(backlog).toBeGreaterThanOrEqual(1);
  expect(backlog).toBeLessThanOrEqual(6 - 1);
  expect(oldest).toBeGreaterThan(0);

  await waitFor(() => events.filter((e) => e.type === 'token.refreshed' && (e.provider === 'serial' || e.provider === 'wide')).length === 6, 'six refreshes', 8000);
  expect(serial.requests).toHaveLength(3);
  expect(wide.requests).toHaveLength(3);
  expect(maxInFlight(serial.requests, delayMs)).toBe(1);
  expect(maxInFlight(wide.requests, delayMs)).toBeLessThanOrEqual(WORKERS);
  expect(maxInFlight([...serial.requests, ...wide.requests], delayMs)).toBe(WORKERS);
  // Each credential was refreshed exactly once, with its own refresh token.
  expect([...serial.requests, ...wide.requests].map((r) => r.form.refresh_token).sort()).toEqual([...refreshTokens.values()].sort());

  await sleep(1100); // the backlog gauges are cached for a second
  expect(await metric('token_vault_refresh_due_backlog')).toBe(0);
  expect(await metric('token_vault_refresh_oldest_due_age_seconds')).toBe(0);
});

test('token_vault_credentials matches the records in Redis', async () => {
  const counts: Record<string, number> = {};
  let cursor = '0';
  do {
    const [next, keys] = await inspect.scan(cursor, 'MATCH', `${vault.deps.keys.prefix}*:cred:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const state = (await inspect.hget(key, 'state')) ?? 'none';
      counts[state] = (counts[state] ?? 0) + 1;
    }
  } while (cursor !== '0');
  expect(counts.active).toBeGreaterThanOrEqual(8);
  expect(await metric('token_vault_credentials', { state: 'active' })).toBe(counts.active);
  expect(await metric('token_vault_credentials', { state: 'reauth_required' })).toBe(counts.reauth_required ?? 0);
});

test('stale schedule entries cost no provider call: deleted, moved forward by a PUT, record gone, or pointing before refresh_at', async () => {
  const stale = providers.stale;
  stale.setDefault(ok({ access_token: token('at'), expires_in: 3600 }));
  for (const user of ['deleted', 'moved', 'vanished']) {
    await put(user, 'stale', { access_token: token('at'), refresh_token: token('rt'), expires_in: 1 });
  }
  await put('early-entry', 'stale', { access_token: token('at'), refresh_token: token('rt'), expires_in: 3600 });

  expect((await request(server).delete('/tokens/deleted/stale').set('Authorization', vault.auth(vault.keys.writer))).status).toBe(204);
  await put('moved', 'stale', { access_token: token('at'), refresh_token: token('rt'), expires_in: 3600 });
  // The record disappears behind the vault's back, leaving its schedule entry.
  await inspect.del(vault.deps.keys.credential('vanished', 'stale'));
  // A schedule entry that says "due now" while the record says an hour from now.
  const refreshAt = Number(await field('early-entry', 'stale', 'refresh_at'));
  await inspect.zadd(vault.deps.keys.due('early-entry'), Date.now() - 1000, 'early-entry:stale');

  await sleep(1500); // the original schedule (0.8 s) has long passed
  expect(stale.requests).toHaveLength(0);
  expect(await dueScore('deleted', 'stale')).toBeNull();
  expect(await dueScore('vanished', 'stale')).toBeNull();
  expect(Number(await dueScore('moved', 'stale'))).toBe(Number(await field('moved', 'stale', 'refresh_at')));
  expect(Number(await dueScore('moved', 'stale'))).toBeGreaterThan(Date.now() + 3_500_000);
  expect(Number(await dueScore('early-entry', 'stale'))).toBe(refreshAt);
  // Only the DELETE of 'deleted' said anything: no refresh happened, so no refresh event.
  expect(events.filter((e) => 'provider' in e && e.provider === 'stale').map((e) => [e.type, 'user' in e && e.user])).toEqual([['token.revoked', 'deleted']]);
});
