import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';
import { WebhookReceiver, type ReceivedWebhook } from '../../helpers/webhook-receiver';

/**
 * Outbound webhooks end to end (DESIGN §4 admin deliveries, §5 outbox, §8 webhooks out): a real
 * vault on a real Redis, subscribers as loopback HTTP receivers, every webhook checked with the
 * `standardwebhooks` package rather than with our own signer. Each scenario runs on its own key
 * prefix, so its relays and dispatchers see only its own outboxes and deliveries; retries use a
 * short schedule ([0, 0.2, 0.2] s) instead of the standard one (covered by the config tests).
 */

let redis: RedisServer;
let inspect: Redis;
let scenarios = 0;
const vaults: TestVault[] = [];
const receivers: WebhookReceiver[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  redis = await RedisServer.start();
  inspect = redis.client();
});

afterEach(async () => {
  // Receivers first: an attempt a receiver holds open ends at once, so a dispatcher stops quickly.
  await Promise.all(receivers.splice(0).map((receiver) => receiver.stop()));
  await Promise.all(vaults.splice(0).map((vault) => vault.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(async () => {
  inspect?.disconnect();
  await redis?.stop();
});

// ---- set-up ---------------------------------------------------------------------------------------

interface SubscriberSetting {
  name: string;
  url: string;
  secret?: string;
  secrets?: string[];
  events: string[];
}

interface VaultSetup {
  prefix: string;
  subscribers: SubscriberSetting[];
  /** Start the outbox relay and the dispatcher with the vault (default true). */
  webhooks?: boolean;
  retrySchedule?: number[];
  timeoutSeconds?: number;
  /** Another replica: same caller keys and keyring. */
  replicaOf?: TestVault;
  config?: (standard: Record<string, unknown>) => Record<string, unknown>;
}

const newPrefix = () => `wh${++scenarios}:`;
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
const hex = () => randomBytes(8).toString('hex');

async function startReceiver(): Promise<WebhookReceiver> {
  const receiver = await WebhookReceiver.start();
  receivers.push(receiver);
  return receiver;
}

async function startReplica(setup: VaultSetup): Promise<TestVault> {
  const vault = await startVault({
    redis,
    clock: TestClock.realTime(),
    keyPrefix: setup.prefix,
    webhooks: setup.webhooks ?? true,
    ...(setup.replicaOf ? { keys: setup.replicaOf.keys, keyringJson: setup.replicaOf.keyringJson } : {}),
    // The periodic sweep is pushed out of the way: events move because the change woke the relay,
    // or because a relay sweeps once as it starts.
    deps: { pollMs: 50, outboxSweepMs: 60_000 },
    config: (standard) => ({
      ...(setup.config ? setup.config(standard) : standard),
      webhooks: { subscribers: setup.subscribers, retrySchedule: setup.retrySchedule ?? [0, 0.2, 0.2], timeoutSeconds: setup.timeoutSeconds ?? 2 },
    }),
  });
  vaults.push(vault);
  return vault;
}

/** One receiver subscribed to token events, and a vault sending to it. */
async function singleSubscriber(setup: Partial<VaultSetup> = {}) {
  const hooks = await startReceiver();
  const secret = newSecret();
  const vault = await startReplica({ prefix: newPrefix(), subscribers: [{ name: 'hooks', url: hooks.url, secret, events: ['token.*'] }], ...setup });
  return { hooks, secret, vault };
}

// ---- calls ----------------------------------------------------------------------------------------

const writer = (vault: TestVault) => vault.auth(vault.keys.writer);
const admin = (vault: TestVault) => vault.auth(vault.keys.admin);

const putToken = (vault: TestVault, user: string, provider: string, body: Record<string, unknown> = { type: 'oauth2', access_token: `at-${hex()}`, expires_in: 3600 }) =>
  request(vault.app).put(`/tokens/${user}/${provider}`).set('Authorization', writer(vault)).send(body);

const deleteToken = (vault: TestVault, user: string, provider: string) => request(vault.app).delete(`/tokens/${user}/${provider}`).set('Authorization', writer(vault));

/** A credential stored and deleted: the version the token.revoked event names. */
async function storeAndDelete(vault: TestVault, user: string, provider = 'github'): Promise<number> {
  const put = await putToken(vault, user, provider);
  expect(put.status).toBe(201);
  expect((await deleteToken(vault, user, provider)).status).toBe(204);
  return (put.body as { version: number }).version;
}

interface DeliveryView {
  id: string;
  event_id: string;
  type: string;
  subscriber: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  created_at: string;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status: number | null;
  last_error: string | null;
  delivered_at: string | null;
  failed_at: string | null;
  payload: unknown;
}

async function listDeliveries(vault: TestVault, status: DeliveryView['status']): Promise<DeliveryView[]> {
  const res = await request(vault.app).get(`/admin/webhooks/deliveries?status=${status}&limit=1000`).set('Authorization', admin(vault));
  expect(res.status).toBe(200);
  expect((res.body as { status: string }).status).toBe(status);
  return (res.body as { deliveries: DeliveryView[] }).deliveries;
}

/** Polls until `done` holds for what `probe` answers (an outcome, not a timing). */
async function eventually<T>(probe: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}; last saw ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const deliveriesWith = (vault: TestVault, status: DeliveryView['status'], count: number) =>
  eventually(() => listDeliveries(vault, status), (list) => list.length >= count, `${count} ${status} deliveries`);

// ---- what arrived ---------------------------------------------------------------------------------

interface WebhookPayload {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function header(hook: ReceivedWebhook, name: 'webhook-id' | 'webhook-timestamp' | 'webhook-signature'): string {
  const value = hook.headers[name];
  if (typeof value !== 'string') throw new Error(`no ${name} header`);
  return value;
}

/** Verified by the standardwebhooks package: throws unless the signature, id and timestamp check out. */
function verify(hook: ReceivedWebhook, secret: string): WebhookPayload {
  const headers = { 'webhook-id': header(hook, 'webhook-id'), 'webhook-timestamp': header(hook, 'webhook-timestamp'), 'webhook-signature': header(hook, 'webhook-signature') };
  return new Webhook(secret).verify(hook.body, headers) as WebhookPayload;
}

/** Every key under {webhooks} of a prefix with everything it holds, as one string. */
async function dumpWebhookKeys(prefix: string): Promise<string> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await inspect.scan(cursor, 'MATCH', `${prefix}{webhooks}:*`, 'COUNT', '1000');
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  const parts: string[] = [];
  for (const key of keys) {
    const type = await inspect.type(key);
    if (type === 'hash') parts.push(key, JSON.stringify(await inspect.hgetall(key)));
    else if (type === 'zset') parts.push(key, JSON.stringify(await inspect.zrange(key, '0', '-1', 'WITHSCORES')));
    else if (type === 'list') parts.push(key, JSON.stringify(await inspect.lrange(key, 0, -1)));
    else if (type === 'string') parts.push(key, String(await inspect.get(key)));
    else parts.push(key, type);
  }
  return parts.join('\n');
}

const auditOf = (vault: TestVault, action: string) => vault.logs.audit().filter((entry) => entry.action === action);
const retryLogs = (vault: TestVault) => vault.logs.entries().filter((entry) => entry.msg === 'webhook attempt failed; will retry');
const metricsText = async (vault: TestVault) => (await request(vault.app).get('/metrics')).text;

// ---- token.revoked ------------------------------------------------------------------------------

describe('token.revoked', () => {
  test('DELETE of one credential and of all of a user’s credentials: one signed token.revoked per credential, and no token value in the outbox, the deliveries, the bodies or the headers', async () => {
    const hooks = await startReceiver();
    const secret = newSecret();
    const prefix = newPrefix();
    // Relay and dispatcher start only once the outbox has been looked at.
    const vault = await startReplica({ prefix, webhooks: false, subscribers: [{ name: 'audit-log', url: hooks.url, secret, events: ['token.*'] }] });
    const tokens = {
      oneAccess: `at-one-${hex()}`,
      oneRefresh: `rt-one-${hex()}`,
      oneId: `idt-one-${hex()}`,
      githubAccess: `at-gh-${hex()}`,
      githubRefresh: `rt-gh-${hex()}`,
      googleAccess: `at-go-${hex()}`,
      googleRefresh: `rt-go-${hex()}`,
      twitterToken: `ot-tw-${hex()}`,
      twitterSecret: `ots-tw-${hex()}`,
    };
    const versions = new Map<string, number>();
    const stored = async (user: string, provider: string, body: Record<string, unknown>) => {
      const put = await putToken(vault, user, provider, body);
      expect(put.status).toBe(201);
      versions.set(`${user}/${provider}`, (put.body as { version: number }).version);
    };
    await stored('rv-one', 'github', { type: 'oauth2', access_token: tokens.oneAccess, refresh_token: tokens.oneRefresh, id_token: tokens.oneId, expires_in: 3600 });
    await stored('rv-all', 'github', { type: 'oauth2', access_token: tokens.githubAccess, refresh_token: tokens.githubRefresh, expires_in: 3600 });
    await stored('rv-all', 'google', { type: 'oauth2', access_token: tokens.googleAccess, refresh_token: tokens.googleRefresh, expires_in: 3600 });
    await stored('rv-all', 'twitter', { type: 'oauth1', oauth_token: tokens.twitterToken, oauth_token_secret: tokens.twitterSecret });

    expect((await deleteToken(vault, 'rv-one', 'github')).status).toBe(204);
    const all = await request(vault.app).delete('/tokens/rv-all').set('Authorization', writer(vault));
    expect(all.status).toBe(200);
    expect([...(all.body as { deleted: string[] }).deleted].sort()).toEqual(['github', 'google', 'twitter']);

    // The events were written to the outboxes with the deletes.
    const outboxes = [...new Set([vault.deps.keys.outbox('rv-one'), vault.deps.keys.outbox('rv-all')])];
    const rawEntries = (await Promise.all(outboxes.map((key) => inspect.lrange(key, 0, -1)))).flat();
    const entries = rawEntries.map((text) => JSON.parse(text) as { id: string; type: string; at: number; data: Record<string, unknown> });
    const expected = [...versions].map(([place, version]) => {
      const [user, provider] = place.split('/');
      return { user, provider, reason: 'deleted', by: 'writer', version };
    });
    const byPlace = (a: Record<string, unknown>, b: Record<string, unknown>) => `${String(a.user)}/${String(a.provider)}`.localeCompare(`${String(b.user)}/${String(b.provider)}`);
    expect(entries.map((e) => e.type)).toEqual(['token.revoked', 'token.revoked', 'token.revoked', 'token.revoked']);
    expect(entries.map((e) => e.data).sort(byPlace)).toEqual(expected.sort(byPlace));
    expect(new Set(entries.map((e) => e.id)).size).toBe(4);

    vault.deps.relay.start();
    vault.deps.dispatcher.start();
    const received = await hooks.waitFor(4);
    const delivered = await deliveriesWith(vault, 'delivered', 4);

    const payloads = received.map((hook) => verify(hook, secret));
    for (const [i, hook] of received.entries()) {
      const entry = entries.find((e) => e.id === header(hook, 'webhook-id'));
      expect(entry).toBeDefined();
      expect(payloads[i]).toEqual({ type: 'token.revoked', timestamp: new Date(entry!.at).toISOString(), data: entry!.data });
      expect(payloads[i]!.timestamp).toMatch(ISO);
    }
    expect(new Set(received.map((hook) => header(hook, 'webhook-id'))).size).toBe(4);
    expect(payloads.map((p) => p.data).sort(byPlace)).toEqual(expected.sort(byPlace));
    expect(await Promise.all(outboxes.map((key) => inspect.llen(key)))).toEqual(outboxes.map(() => 0));
    expect(delivered.map((d) => [d.subscriber, d.attempts, d.status])).toEqual(Array.from({ length: 4 }, () => ['audit-log', 1, 'delivered']));
    expect(delivered.map((d) => d.event_id).sort()).toEqual(entries.map((e) => e.id).sort());

    // No token value on the way: outbox entries, delivery records, bodies, headers, the admin view.
    const everything = [
      ...rawEntries,
      await dumpWebhookKeys(prefix),
      ...received.map((hook) => hook.body),
      ...received.map((hook) => JSON.stringify(hook.headers)),
      JSON.stringify(delivered),
    ].join('\n');
    expect(everything).toContain('rv-all');
    for (const token of Object.values(tokens)) expect(everything).not.toContain(token);
  });

  test('event filters: "key.*" gets nothing for a delete, "*" and "token.*" each get their own delivery of the same event (same webhook-id)', async () => {
    const [keysOnly, everything, tokensOnly] = await Promise.all([startReceiver(), startReceiver(), startReceiver()]);
    const secret = newSecret();
    const vault = await startReplica({
      prefix: newPrefix(),
      subscribers: [
        { name: 'keys-only', url: keysOnly.url, secret, events: ['key.*'] },
        { name: 'everything', url: everything.url, secret, events: ['*'] },
        { name: 'tokens-only', url: tokensOnly.url, secret, events: ['token.*'] },
      ],
    });
    const version = await storeAndDelete(vault, 'filtered');

    const [toEverything] = await everything.waitFor(1);
    const [toTokens] = await tokensOnly.waitFor(1);
    expect(verify(toEverything!, secret)).toMatchObject({ type: 'token.revoked', data: { user: 'filtered', provider: 'github', version } });
    expect(verify(toTokens!, secret)).toEqual(verify(toEverything!, secret));
    expect(header(toTokens!, 'webhook-id')).toBe(header(toEverything!, 'webhook-id'));

    // Every delivery of an event is created in one step: none was created for keys-only.
    const delivered = await deliveriesWith(vault, 'delivered', 2);
    expect(delivered.map((d) => d.subscriber).sort()).toEqual(['everything', 'tokens-only']);
    expect(delivered[0]!.id).not.toBe(delivered[1]!.id);
    expect(delivered.map((d) => d.event_id)).toEqual([header(toEverything!, 'webhook-id'), header(toEverything!, 'webhook-id')]);
    expect([...(await listDeliveries(vault, 'pending')), ...(await listDeliveries(vault, 'failed'))]).toEqual([]);
    expect(keysOnly.received).toEqual([]);
  });

  test('a subscriber rotating its secret (two secrets): two v1 signatures, and the package verifies with either secret alone', async () => {
    const hooks = await startReceiver();
    const [oldSecret, newSecretValue] = [newSecret(), newSecret()];
    const vault = await startReplica({ prefix: newPrefix(), subscribers: [{ name: 'rotating', url: hooks.url, secrets: [oldSecret, newSecretValue], events: ['token.revoked'] }] });
    await storeAndDelete(vault, 'two-secrets');

    const [hook] = await hooks.waitFor(1);
    const signatures = header(hook!, 'webhook-signature').split(' ');
    expect(signatures).toHaveLength(2);
    for (const signature of signatures) expect(signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(verify(hook!, oldSecret)).toMatchObject({ type: 'token.revoked', data: { user: 'two-secrets' } });
    expect(verify(hook!, newSecretValue)).toEqual(verify(hook!, oldSecret));
    expect(() => verify(hook!, newSecret())).toThrow();
  });
});

// ---- retries and dead letters ---------------------------------------------------------------------

describe('retries', () => {
  test('503, 503, then 200: three attempts with the same webhook-id, each freshly signed and verifiable; the admin API shows it delivered after 3 attempts', async () => {
    const { hooks, secret, vault } = await singleSubscriber();
    hooks.answer([503, 503], 200);
    const version = await storeAndDelete(vault, 'flaky-receiver');

    const attempts = await hooks.waitFor(3);
    const [delivered] = await deliveriesWith(vault, 'delivered', 1);
    expect(attempts.map((hook) => hook.status)).toEqual([503, 503, 200]);
    const webhookId = header(attempts[0]!, 'webhook-id');
    expect(webhookId).toMatch(/^msg_/);
    const payloads = attempts.map((hook) => verify(hook, secret));
    for (const hook of attempts) {
      expect(header(hook, 'webhook-id')).toBe(webhookId);
      expect(header(hook, 'webhook-timestamp')).toMatch(/^\d{10}$/);
    }
    expect(payloads[1]).toEqual(payloads[0]);
    expect(payloads[2]).toEqual(payloads[0]);
    expect(attempts.map((hook) => hook.body)).toEqual([attempts[0]!.body, attempts[0]!.body, attempts[0]!.body]);
    expect(delivered).toEqual({
      id: expect.stringMatching(/^dlv_/),
      event_id: webhookId,
      type: 'token.revoked',
      subscriber: 'hooks',
      status: 'delivered',
      attempts: 3,
      created_at: expect.stringMatching(ISO),
      next_attempt_at: null,
      last_attempt_at: expect.stringMatching(ISO),
      last_status: 200,
      last_error: 'ok',
      delivered_at: expect.stringMatching(ISO),
      failed_at: null,
      payload: { type: 'token.revoked', timestamp: expect.stringMatching(ISO), data: { user: 'flaky-receiver', provider: 'github', reason: 'deleted', by: 'writer', version } },
    });
    expect(retryLogs(vault).map((entry) => [entry.attempt, entry.status])).toEqual([
      [1, 503],
      [2, 503],
    ]);
    expect(await listDeliveries(vault, 'pending')).toEqual([]);
  });

  test.each([
    ['429 Too Many Requests', 429, 'HTTP 429'],
    ['a dropped connection', 'drop', 'network error'],
    ['no answer within timeoutSeconds', 'hang', 'timeout'],
  ] as const)('%s is retried: the second attempt delivers it', async (_name, first, reason) => {
    const { hooks, secret, vault } = await singleSubscriber({ timeoutSeconds: 1 });
    hooks.answer([first], 200);
    await storeAndDelete(vault, 'retried');

    const attempts = await hooks.waitFor(2);
    const [delivered] = await deliveriesWith(vault, 'delivered', 1);
    expect(attempts.map((hook) => hook.status)).toEqual([first === 429 ? 429 : 0, 200]);
    expect(header(attempts[1]!, 'webhook-id')).toBe(header(attempts[0]!, 'webhook-id'));
    expect(verify(attempts[0]!, secret)).toEqual(verify(attempts[1]!, secret));
    expect(delivered).toMatchObject({ status: 'delivered', attempts: 2, last_status: 200, event_id: header(attempts[0]!, 'webhook-id') });
    expect(retryLogs(vault).map((entry) => [entry.attempt, entry.reason])).toEqual([[1, reason]]);
  });

  test.each([
    [400, 'HTTP 400'],
    [410, 'HTTP 410'],
    [302, 'HTTP 302 (redirects are not followed)'],
  ] as const)('a %i answer is not retried: one attempt, then a dead letter listed with its status', async (status, reason) => {
    const { hooks, vault } = await singleSubscriber();
    hooks.answer([], status);
    await storeAndDelete(vault, `refused-${status}`);

    const [failed] = await deliveriesWith(vault, 'failed', 1);
    // The attempt was recorded as failed, so nothing can be sent again: exactly one request
    // (a followed redirect would have been a second one, to the Location the receiver gave).
    expect(hooks.received.map((hook) => hook.status)).toEqual([status]);
    expect(failed).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_status: status,
      last_error: reason,
      next_attempt_at: null,
      delivered_at: null,
      failed_at: expect.stringMatching(ISO),
      event_id: header(hooks.received[0]!, 'webhook-id'),
    });
    expect(await listDeliveries(vault, 'pending')).toEqual([]);
    expect(retryLogs(vault)).toEqual([]);
    expect(auditOf(vault, 'webhook.dead_letter')).toEqual([expect.objectContaining({ delivery: failed!.id, attempts: 1, subscriber: 'hooks', outcome: 'failed' })]);
  });

  test('always 500: exactly 3 attempts, then a dead letter (audited, counted); once the receiver is fixed, POST .../retry delivers it with the same webhook-id', async () => {
    const { hooks, secret, vault } = await singleSubscriber();
    hooks.answer([], 500);
    await storeAndDelete(vault, 'dead-letter');

    const [failed] = await deliveriesWith(vault, 'failed', 1);
    expect(hooks.received.map((hook) => hook.status)).toEqual([500, 500, 500]);
    const webhookId = header(hooks.received[0]!, 'webhook-id');
    expect(hooks.received.map((hook) => header(hook, 'webhook-id'))).toEqual([webhookId, webhookId, webhookId]);
    for (const hook of hooks.received) verify(hook, secret);
    expect(failed).toMatchObject({ event_id: webhookId, status: 'failed', attempts: 3, last_status: 500, last_error: 'HTTP 500', failed_at: expect.stringMatching(ISO) });
    expect(await listDeliveries(vault, 'pending')).toEqual([]);
    expect(auditOf(vault, 'webhook.dead_letter')).toEqual([expect.objectContaining({ delivery: failed!.id, event: webhookId, subscriber: 'hooks', attempts: 3, outcome: 'failed' })]);
    const metrics = await metricsText(vault);
    expect(metrics).toContain('token_vault_webhook_deliveries_total{subscriber="hooks",outcome="retry"} 2');
    expect(metrics).toContain('token_vault_webhook_deliveries_total{subscriber="hooks",outcome="failed"} 1');
    expect(metrics).toContain('token_vault_webhook_deliveries{status="failed"} 1');

    // Only admins see or retry deliveries; ids are checked.
    expect((await request(vault.app).get('/admin/webhooks/deliveries?status=failed').set('Authorization', writer(vault))).status).toBe(403);
    expect((await request(vault.app).post(`/admin/webhooks/deliveries/${failed!.id}/retry`).set('Authorization', writer(vault))).status).toBe(403);
    expect((await request(vault.app).post('/admin/webhooks/deliveries/dlv_doesNotExist/retry').set('Authorization', admin(vault))).status).toBe(404);
    const malformed = await request(vault.app).post('/admin/webhooks/deliveries/not-a-delivery/retry').set('Authorization', admin(vault));
    expect(malformed.status).toBe(400);
    expect((malformed.body as { error: { code: string } }).error.code).toBe('invalid_request');

    hooks.answer([], 200);
    const retried = await request(vault.app).post(`/admin/webhooks/deliveries/${failed!.id}/retry`).set('Authorization', admin(vault));
    expect(retried.status).toBe(202);
    expect((retried.body as { delivery: DeliveryView }).delivery).toMatchObject({ id: failed!.id, event_id: webhookId, attempts: 0, failed_at: null });

    const [delivered] = await deliveriesWith(vault, 'delivered', 1);
    expect(hooks.received.map((hook) => hook.status)).toEqual([500, 500, 500, 200]);
    expect(header(hooks.received[3]!, 'webhook-id')).toBe(webhookId);
    expect(verify(hooks.received[3]!, secret)).toEqual(verify(hooks.received[0]!, secret));
    expect(delivered).toMatchObject({ id: failed!.id, event_id: webhookId, status: 'delivered', attempts: 1, last_status: 200, failed_at: null });
    expect(await listDeliveries(vault, 'failed')).toEqual([]);
    expect(auditOf(vault, 'webhook.retry')).toEqual([expect.objectContaining({ caller: 'admin', delivery: failed!.id, outcome: 'ok' })]);
    const after = await metricsText(vault);
    expect(after).toContain('token_vault_webhook_deliveries_total{subscriber="hooks",outcome="delivered"} 1');
    expect(after).toContain('token_vault_webhook_deliveries{status="failed"} 0');
  });
});

// ---- durability and replicas ----------------------------------------------------------------------

describe('outbox durability and replicas', () => {
  test('with no relay running, DELETE leaves the event in the outbox; a vault started later on the same Redis delivers it', async () => {
    const hooks = await startReceiver();
    const secret = newSecret();
    const prefix = newPrefix();
    const subscribers = [{ name: 'hooks', url: hooks.url, secret, events: ['token.*'] }];
    const first = await startReplica({ prefix, subscribers, webhooks: false });
    const version = await storeAndDelete(first, 'durable');

    const outbox = first.deps.keys.outbox('durable');
    const waiting = await inspect.lrange(outbox, 0, -1);
    expect(waiting).toHaveLength(1);
    const entry = JSON.parse(waiting[0]!) as { id: string; type: string; at: number; data: unknown };
    expect(entry).toEqual({ id: expect.stringMatching(/^msg_/), type: 'token.revoked', at: expect.any(Number), data: { user: 'durable', provider: 'github', reason: 'deleted', by: 'writer', version } });
    expect(await inspect.zcard(first.deps.keys.deliveries('pending'))).toBe(0);

    const second = await startReplica({ prefix, subscribers, replicaOf: first });
    const [hook] = await hooks.waitFor(1);
    expect(header(hook!, 'webhook-id')).toBe(entry.id);
    expect(verify(hook!, secret)).toEqual({ type: 'token.revoked', timestamp: new Date(entry.at).toISOString(), data: entry.data });
    expect(await deliveriesWith(second, 'delivered', 1)).toEqual([expect.objectContaining({ event_id: entry.id, attempts: 1 })]);
    expect(await inspect.llen(outbox)).toBe(0);
  });

  test('an event moved twice (two replicas sweeping at once, a copy left in the outbox, a copy found after delivery) is delivered once', async () => {
    const hooks = await startReceiver();
    const secret = newSecret();
    const prefix = newPrefix();
    const subscribers = [{ name: 'hooks', url: hooks.url, secret, events: ['token.*'] }];
    const a = await startReplica({ prefix, subscribers, webhooks: false });
    const b = await startReplica({ prefix, subscribers, webhooks: false, replicaOf: a });
    await storeAndDelete(a, 'moved-twice');
    const outbox = a.deps.keys.outbox('moved-twice');
    const [entry] = await inspect.lrange(outbox, 0, -1);
    // A relay that created the deliveries and died before removing the event leaves it behind.
    await inspect.rpush(outbox, entry!);

    await Promise.all([a.deps.relay.sweep(), b.deps.relay.sweep(), a.deps.relay.sweep()]);
    expect(await inspect.llen(outbox)).toBe(0);
    const pending = await listDeliveries(a, 'pending');
    expect(pending).toHaveLength(1);

    a.deps.dispatcher.start();
    b.deps.dispatcher.start();
    const [hook] = await hooks.waitFor(1);
    await deliveriesWith(a, 'delivered', 1);
    expect(header(hook!, 'webhook-id')).toBe((JSON.parse(entry!) as { id: string }).id);

    // The same event found again after it was delivered creates nothing new.
    await inspect.rpush(outbox, entry!);
    await b.deps.relay.sweep();
    expect(await inspect.llen(outbox)).toBe(0);
    expect(await listDeliveries(a, 'pending')).toEqual([]);

    await Promise.all([a.deps.dispatcher.stop(), b.deps.dispatcher.stop()]);
    expect(hooks.received).toHaveLength(1);
    expect(await listDeliveries(a, 'delivered')).toEqual([expect.objectContaining({ id: pending[0]!.id, attempts: 1 })]);
  });

  test('a replica that died during an attempt: the delivery comes due again when its lease ends, and the dead owner can no longer record an outcome', async () => {
    const hooks = await startReceiver();
    const secret = newSecret();
    const prefix = newPrefix();
    const subscribers = [{ name: 'hooks', url: hooks.url, secret, events: ['token.*'] }];
    const crashed = await startReplica({ prefix, subscribers, webhooks: false });
    await storeAndDelete(crashed, 'lease-ended');
    await crashed.deps.relay.sweep();
    const claimed = await crashed.deps.deliveries.claim(10, 300, 'crashed-replica');
    expect(claimed).toHaveLength(1);

    const survivor = await startReplica({ prefix, subscribers, replicaOf: crashed });
    const [hook] = await hooks.waitFor(1);
    verify(hook!, secret);
    const [delivered] = await deliveriesWith(survivor, 'delivered', 1);
    expect(delivered).toMatchObject({ id: claimed[0], status: 'delivered', attempts: 1 });
    expect(await crashed.deps.deliveries.complete(claimed[0]!, 'crashed-replica', { result: 'failed', delayMs: 0, status: 500, reason: 'HTTP 500' })).toBe(false);
    expect(await listDeliveries(survivor, 'delivered')).toEqual([expect.objectContaining({ id: claimed[0], status: 'delivered', attempts: 1 })]);
    expect(await listDeliveries(survivor, 'failed')).toEqual([]);
  });

  test('two replicas with the same subscriber, both sending: N deletes on either make exactly N webhooks, no duplicates', async () => {
    const N = 24;
    const hooks = await startReceiver();
    const secret = newSecret();
    const prefix = newPrefix();
    const subscribers = [{ name: 'hooks', url: hooks.url, secret, events: ['token.*'] }];
    const a = await startReplica({ prefix, subscribers });
    const b = await startReplica({ prefix, subscribers, replicaOf: a });
    const users = Array.from({ length: N }, (_, i) => `replica-user-${i}`);
    for (const user of users) expect((await putToken(a, user, 'github')).status).toBe(201);

    const deletes = await Promise.all(users.map((user, i) => deleteToken(i % 2 === 0 ? a : b, user, 'github')));
    expect(deletes.map((res) => res.status)).toEqual(users.map(() => 204));

    await hooks.waitFor(N);
    await deliveriesWith(a, 'delivered', N);
    // With nothing pending and both dispatchers stopped (in-flight attempts awaited), every
    // request that will ever be sent has been received.
    await Promise.all([a.deps.dispatcher.stop(), b.deps.dispatcher.stop()]);
    expect(hooks.received).toHaveLength(N);
    expect(new Set(hooks.received.map((hook) => header(hook, 'webhook-id'))).size).toBe(N);
    expect(hooks.received.map((hook) => String(verify(hook, secret).data.user)).sort()).toEqual([...users].sort());
    const delivered = await listDeliveries(a, 'delivered');
    expect(delivered).toHaveLength(N);
    expect(delivered.every((d) => d.attempts === 1)).toBe(true);
    expect(await listDeliveries(b, 'pending')).toEqual([]);
    expect(await inspect.hlen(a.deps.keys.deliveryLeases())).toBe(0);
  });

  test('a rolling config change: a replica that does not know a new subscriber passes its deliveries on (retry), and one that knows it sends them', async () => {
    const hooks = await startReceiver();
    const secret = newSecret();
    const prefix = newPrefix();
    // The new configuration is on `updated` (not sending yet); `old` sends and knows no subscriber.
    const updated = await startReplica({ prefix, subscribers: [{ name: 'new-sub', url: hooks.url, secret, events: ['token.*'] }], webhooks: false, retrySchedule: [0, 0.3, 0.3] });
    const old = await startReplica({ prefix, subscribers: [], replicaOf: updated });
    await storeAndDelete(updated, 'rolling-user');
    await updated.deps.relay.sweep();

    const [passed] = await eventually(() => listDeliveries(old, 'pending'), (list) => list.length === 1 && list[0]!.attempts === 1, 'the old replica to pass it on');
    expect(passed).toMatchObject({ subscriber: 'new-sub', status: 'pending', last_error: 'subscriber not configured on this replica' });
    expect(hooks.received).toEqual([]);

    await old.deps.dispatcher.stop();
    updated.deps.dispatcher.start();
    const [hook] = await hooks.waitFor(1);
    expect(verify(hook!, secret).data.user).toBe('rolling-user');
    expect(await listDeliveries(updated, 'delivered')).toEqual([expect.objectContaining({ id: passed!.id, attempts: 2 })]);
  });

  test('a hanging subscriber never blocks token calls: DELETE, PUT and GET answer while the webhooks stay pending', async () => {
    // The receiver holds every request open; the 10 s timeout keeps the attempts in flight meanwhile.
    const { hooks, vault } = await singleSubscriber({ timeoutSeconds: 10, retrySchedule: [0, 60] });
    hooks.answer([], 'hang');
    expect((await putToken(vault, 'busy', 'github')).status).toBe(201);
    expect((await putToken(vault, 'busy', 'google')).status).toBe(201);

    expect((await deleteToken(vault, 'busy', 'github')).status).toBe(204);
    await hooks.waitFor(1); // the webhook is being held open by the receiver
    expect((await deleteToken(vault, 'busy', 'google')).status).toBe(204);
    expect((await putToken(vault, 'busy-2', 'github', { type: 'oauth2', access_token: 'at-busy-2', expires_in: 3600 })).status).toBe(201);
    const read = await request(vault.app).get('/tokens/busy-2/github').set('Authorization', vault.auth(vault.keys.reader));
    expect(read.status).toBe(200);
    expect((read.body as { access_token: string }).access_token).toBe('at-busy-2');
    await hooks.waitFor(2);

    const pending = await listDeliveries(vault, 'pending');
    expect(pending.map((d) => [(d.payload as WebhookPayload).data.provider, d.status]).sort()).toEqual([
      ['github', 'pending'],
      ['google', 'pending'],
    ]);
    expect(hooks.received.map((hook) => hook.status)).toEqual([0, 0]);
    expect([...(await listDeliveries(vault, 'delivered')), ...(await listDeliveries(vault, 'failed'))]).toEqual([]);
  });
});

// ---- key and job events ---------------------------------------------------------------------------

describe('key events', () => {
  test('key.rotated when a reloaded key becomes active, rewrap.completed when the rewrap job ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tv-webhook-keys-'));
    dirs.push(dir);
    const keyringFile = join(dir, 'keyring.json');
    const material = { k1: randomBytes(32).toString('base64'), k2: randomBytes(32).toString('base64') };
    const writeKeyring = (active: string, ids: (keyof typeof material)[]) =>
      writeFileSync(keyringFile, JSON.stringify({ active, keys: Object.fromEntries(ids.map((id) => [id, material[id]])) }));
    writeKeyring('k1', ['k1']);
    const [ops, tokensOnly] = await Promise.all([startReceiver(), startReceiver()]);
    const secret = newSecret();
    const vault = await startReplica({
      prefix: newPrefix(),
      subscribers: [
        { name: 'ops', url: ops.url, secret, events: ['key.rotated', 'rewrap.*'] },
        { name: 'tokens-only', url: tokensOnly.url, secret, events: ['token.*'] },
      ],
      config: (standard) => ({ ...standard, keyring: { file: keyringFile } }),
    });
    for (const user of ['kr-1', 'kr-2', 'kr-3']) expect((await putToken(vault, user, 'github')).status).toBe(201);

    writeKeyring('k2', ['k1', 'k2']);
    const reload = await request(vault.app).post('/admin/keys/reload').set('Authorization', admin(vault));
    expect(reload.status).toBe(200);
    expect((reload.body as { active: string }).active).toBe('k2');
    const [rotated] = await ops.waitFor(1);
    expect(verify(rotated!, secret)).toEqual({ type: 'key.rotated', timestamp: expect.stringMatching(ISO), data: { from: 'k1', to: 'k2' } });

    const started = await request(vault.app).post('/admin/rewrap').set('Authorization', admin(vault));
    expect(started.status).toBe(202);
    const jobId = (started.body as { job: { id: string } }).job.id;
    const job = await eventually(
      async () => (await request(vault.app).get(`/admin/rewrap/${jobId}`).set('Authorization', admin(vault))).body as { job: { state: string } },
      (body) => body.job.state !== 'running',
      'the rewrap job to end',
    );
    expect(job.job.state).toBe('done');
    const [, completed] = await ops.waitFor(2);
    expect(verify(completed!, secret)).toEqual({ type: 'rewrap.completed', timestamp: expect.stringMatching(ISO), data: { job: jobId, target: 'k2', rewrapped: 3, failed: 0 } });

    const delivered = await deliveriesWith(vault, 'delivered', 2);
    expect(delivered.map((d) => [d.type, d.subscriber]).sort()).toEqual([
      ['key.rotated', 'ops'],
      ['rewrap.completed', 'ops'],
    ]);
    expect(tokensOnly.received).toEqual([]);
  });
});
