import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import type { DomainEvent } from '../../../src/events/event-bus';
import { startVault, TEST_PROVIDERS, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * POST /webhooks/:provider/revocation (DESIGN §4): a provider tells the vault that accounts
 * revoked the app. Every verifier (generic Standard Webhooks, GitHub, Slack) is driven with
 * requests signed here with node:crypto (and, for generic, with the standardwebhooks package as
 * an independent signer), and the test looks at what a user sees: the answer, which credentials
 * are still served, the token.revoked events, the audit log, the metric, and Redis itself
 * (account index, replay guard, upstream revocation queue).
 *
 * The vault's clock is the fixed TestClock; requests are signed relative to it.
 */

const ACME_SECRETS = [`whsec_${randomBytes(32).toString('base64')}`, `whsec_${randomBytes(32).toString('base64')}`] as const;
const ACME_PLAIN_SECRET = 'acme-plain-utf8-signing-secret';
const GH_SECRETS = ['gh-webhook-secret-old', 'gh-webhook-secret-new'] as const;
const SLACK_SECRETS = ['8f742231b10e8888abcd99yyyzzz85a5', 'a1b2c3d4e5f60718293a4b5c6d7e8f90'] as const;
const FOREIGN_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const TOLERANCE_SECONDS = 300;
const BODY_LIMIT_BYTES = 4096;

/** Records what reaches the providers' RFC 7009 revocation endpoints (nothing should, from a webhook). */
interface UpstreamRevocation {
  provider: string;
  token: string;
}

let redis: RedisServer;
let inspect: Redis;
let vault: TestVault;
let upstream: Server;
let upstreamUrl: string;
const upstreamRevocations: UpstreamRevocation[] = [];
const events: DomainEvent[] = [];

function provider(id: string, inboundWebhook?: Record<string, unknown>): Record<string, unknown> {
  return {
    ...TEST_PROVIDERS.github,
    clientId: `${id}-client`,
    revocationUrl: `${upstreamUrl}/${id}/revoke`,
    ...(inboundWebhook ? { inboundWebhook } : {}),
  };
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      upstreamRevocations.push({ provider: (req.url ?? '').split('/')[1] ?? '', token: new URLSearchParams(body).get('token') ?? '' });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  redis = await RedisServer.start();
  inspect = redis.client();
  vault = await startVault({
    redis,
    config: (standard) => ({
      ...standard,
      server: { bodyLimit: BODY_LIMIT_BYTES },
      providers: {
        ...(standard.providers as Record<string, unknown>),
        acme: provider('acme', { secrets: [...ACME_SECRETS], toleranceSeconds: TOLERANCE_SECONDS }),
        'acme-plain': provider('acme-plain', { verifier: 'generic', secret: ACME_PLAIN_SECRET }),
        gh: provider('gh', { verifier: 'github', secrets: [...GH_SECRETS] }),
        slack: provider('slack', { verifier: 'slack', secrets: [...SLACK_SECRETS], toleranceSeconds: TOLERANCE_SECONDS }),
        nohook: provider('nohook'),
      },
    }),
  });
  vault.deps.events.subscribe((event) => events.push(event));
});

afterAll(async () => {
  await vault?.close();
  await inspect?.quit();
  await redis?.stop();
  await new Promise((resolve) => upstream?.close(resolve));
});

// ---------------------------------------------------------------------------------------------
// Helpers: names, credentials, signing, observation

let counter = 0;
/** A fresh name per use, so tests sharing one vault never see each other's users or accounts. */
function unique(label: string): string {
  counter += 1;
  return `${label}${counter}-${randomBytes(3).toString('hex')}`;
}

function nowSeconds(): number {
  return Math.floor(vault.clock.now() / 1000);
}

function accessToken(user: string, providerId: string): string {
  return `at-${user}-${providerId}`;
}

/** PUT a credential carrying the provider's account id (which writes the account index). */
async function connect(user: string, providerId: string, accountId: string): Promise<void> {
  const res = await request(vault.app)
    .put(`/tokens/${user}/${providerId}`)
    .set('Authorization', vault.auth(vault.keys.writer))
    .send({ type: 'oauth2', access_token: accessToken(user, providerId), expires_in: 3600, account_id: accountId });
  expect([200, 201]).toContain(res.status);
}

/** Which of these credentials the vault still serves (GET /tokens/:user/:provider: 200 or 404). */
async function served(...credentials: Array<[user: string, provider: string]>): Promise<Record<string, boolean>> {
  const result: Record<string, boolean> = {};
  for (const [user, providerId] of credentials) {
    const res = await request(vault.app).get(`/tokens/${user}/${providerId}`).set('Authorization', vault.auth(vault.keys.reader));
    expect([200, 404]).toContain(res.status);
    if (res.status === 200) expect(res.body.access_token).toBe(accessToken(user, providerId));
    result[`${user}/${providerId}`] = res.status === 200;
  }
  return result;
}

/**
 * The body goes out as a string, byte for byte (UTF-8): supertest would JSON-serialize a Buffer
 * sent with a JSON Content-Type ({"type":"Buffer","data":[...]}), breaking the signature.
 */
function post(providerId: string, body: string, headers: Record<string, string>): request.Test {
  return request(vault.app).post(`/webhooks/${providerId}/revocation`).set('Content-Type', 'application/json').set(headers).send(body);
}

/** `whsec_<base64>` secrets are key bytes; any other secret is its UTF-8 text. */
function genericKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
}

function genericSignature(secret: string, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', genericKey(secret)).update(`${id}.${timestamp}.${body}`, 'utf8').digest('base64')}`;
}

function genericHeaders(secret: string, body: string, options: { id?: string; timestamp?: number } = {}): Record<string, string> {
  const id = options.id ?? `msg_${randomUUID()}`;
  const timestamp = options.timestamp ?? nowSeconds();
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': genericSignature(secret, id, timestamp, body) };
}

function githubHeaders(secret: string, body: string, options: { delivery?: string; event?: string } = {}): Record<string, string> {
  return {
    'X-Hub-Signature-256': `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`,
    'X-GitHub-Event': options.event ?? 'github_app_authorization',
    'X-GitHub-Delivery': options.delivery ?? randomUUID(),
  };
}

function githubRevocation(id: number, login: string): string {
  return JSON.stringify({ action: 'revoked', sender: { login, id, node_id: 'MDQ6VXNlcjE=', type: 'User', site_admin: false } });
}

function slackHeaders(secret: string, body: string, options: { timestamp?: number } = {}): Record<string, string> {
  const timestamp = options.timestamp ?? nowSeconds();
  return {
    'X-Slack-Request-Timestamp': String(timestamp),
    'X-Slack-Signature': `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`, 'utf8').digest('hex')}`,
  };
}

function slackTokensRevoked(eventId: string, teamId: string, tokens: { oauth?: string[]; bot?: string[] }): string {
  return JSON.stringify({
    token: 'XXYYZZ',
    team_id: teamId,
    api_app_id: 'A0KRD7HC3',
    event: { type: 'tokens_revoked', tokens },
    type: 'event_callback',
    event_id: eventId,
    event_time: nowSeconds(),
  });
}

function expectError(res: request.Response, status: number, code: string): void {
  expect({ status: res.status, body: res.body }).toEqual({ status, body: { error: { code, message: expect.any(String) } } });
}

/** A counter from /metrics (what an operator scrapes), summed over series whose labels include `labels`. */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const text = (await request(vault.app).get('/metrics').expect(200)).text;
  let total = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const seen = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => seen[key] === value)) total += Number(match[3]);
  }
  return total;
}

function inboundCount(providerId: string, outcome: string): Promise<number> {
  return metric('token_vault_inbound_webhooks_total', { provider: providerId, outcome });
}

function revokedEvents(providerId: string, users: readonly string[]): DomainEvent[] {
  return events
    .filter((event) => event.type === 'token.revoked' && event.provider === providerId && users.includes(event.user))
    .sort((a, b) => ('user' in a && 'user' in b ? a.user.localeCompare(b.user) : 0));
}

function webhookAudits(delivery: string): Record<string, unknown>[] {
  return vault.logs.audit().filter((entry) => entry.action === 'webhook.revocation' && entry.delivery === delivery);
}

/**
 * What a handled revocation leaves behind, beyond the answer: one token.revoked event per deleted
 * user (reason provider_webhook, by webhook:<provider>), one audit entry for the delivery, a
 * credential.delete audit per user, nothing queued for upstream revocation, and the deleted
 * users gone from the account indexes.
 */
async function expectHandledRevocation(options: { provider: string; delivery: string; event: string; deleted: string[]; accountIds: string[] }): Promise<void> {
  const { provider: providerId, delivery, event, deleted, accountIds } = options;
  const users = [...deleted].sort((a, b) => a.localeCompare(b));
  expect(revokedEvents(providerId, users)).toEqual(
    users.map((user) => ({ type: 'token.revoked', id: expect.stringMatching(/^msg_/), user, provider: providerId, reason: 'provider_webhook', by: `webhook:${providerId}`, version: expect.any(Number) })),
  );
  const audits = webhookAudits(delivery);
  expect(audits).toHaveLength(1);
  expect(audits[0]).toMatchObject({ action: 'webhook.revocation', caller: `webhook:${providerId}`, provider: providerId, outcome: 'ok', event, delivery, deleted: deleted.length, request_id: expect.any(String) });
  const deletes = vault.logs.audit().filter((entry) => entry.action === 'credential.delete' && entry.provider === providerId && users.includes(String(entry.user)));
  expect(deletes.map((entry) => ({ user: entry.user, caller: entry.caller, outcome: entry.outcome })).sort((a, b) => String(a.user).localeCompare(String(b.user)))).toEqual(
    users.map((user) => ({ user, caller: `webhook:${providerId}`, outcome: 'ok' })),
  );
  // Not revoked upstream: the provider sent the revocation, so nothing is queued for RFC 7009.
  for (const user of users) {
    const queued = await inspect.zrange(vault.deps.keys.revocations(user), '0', '-1');
    expect(queued.filter((member) => member.endsWith(`:${user}:${providerId}`))).toEqual([]);
    expect(upstreamRevocations.filter((call) => call.token === accessToken(user, providerId))).toEqual([]);
  }
  for (const accountId of accountIds) {
    const indexed = await inspect.smembers(vault.deps.keys.accountIndex(providerId, accountId));
    expect(indexed.filter((user) => users.includes(user))).toEqual([]);
  }
}

async function seenTtl(providerId: string, delivery: string): Promise<number> {
  return inspect.ttl(vault.deps.keys.inboundSeen(providerId, delivery));
}

/** The same body with one byte changed (the last occurrence of `from` becomes `to`). */
function tamper(body: string, from: string, to: string): string {
  const at = body.lastIndexOf(from);
  expect(at).toBeGreaterThanOrEqual(0);
  const tampered = `${body.slice(0, at)}${to}${body.slice(at + 1)}`;
  const a = Buffer.from(body);
  const b = Buffer.from(tampered);
  expect(a.length).toBe(b.length);
  expect([...a].filter((byte, i) => byte !== b[i])).toHaveLength(1);
  return tampered;
}

// ---------------------------------------------------------------------------------------------

describe('generic verifier (Standard Webhooks)', () => {
  test('a verified revocation deletes every credential carrying the account, keeps other accounts and other providers, emits, audits and counts', async () => {
    const account = unique('acct-');
    const [alice, bob, carol, dave] = ['alice', 'bob', 'carol', 'dave'].map((name) => unique(`g-${name}-`)) as [string, string, string, string];
    await connect(alice, 'acme', account);
    await connect(bob, 'acme', account);
    await connect(carol, 'acme', `${account}-other`);
    await connect(dave, 'github', account);
    const before = await inboundCount('acme', 'revoked');

    const body = JSON.stringify({ type: 'account.revoked', account_id: account });
    const headers = genericHeaders(ACME_SECRETS[0], body);
    const res = await post('acme', body, headers);

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 2 } });
    expect(await served([alice, 'acme'], [bob, 'acme'], [carol, 'acme'], [dave, 'github'])).toEqual({
      [`${alice}/acme`]: false,
      [`${bob}/acme`]: false,
      [`${carol}/acme`]: true,
      [`${dave}/github`]: true,
    });
    await expectHandledRevocation({ provider: 'acme', delivery: headers['webhook-id']!, event: 'account.revoked', deleted: [alice, bob], accountIds: [account] });
    expect(revokedEvents('acme', [carol])).toEqual([]);
    expect(revokedEvents('github', [dave])).toEqual([]);
    expect(await inboundCount('acme', 'revoked')).toBe(before + 1);
    // Remembered for twice the tolerance: past that, the signed timestamp refuses a replay anyway.
    const ttl = await seenTtl('acme', headers['webhook-id']!);
    expect(ttl).toBeGreaterThan(2 * TOLERANCE_SECONDS - 10);
    expect(ttl).toBeLessThanOrEqual(2 * TOLERANCE_SECONDS);
  });

  test('account_ids names several accounts in one delivery (event defaults to "revocation")', async () => {
    const [a1, a2] = [unique('acct-'), unique('acct-')];
    const [u1, u2, u3] = [unique('g-list-'), unique('g-list-'), unique('g-list-')];
    await connect(u1, 'acme', a1);
    await connect(u2, 'acme', a2);
    await connect(u3, 'acme', unique('acct-'));

    const body = JSON.stringify({ account_ids: [a1, a2, 'nobody-has-this-account'] });
    const headers = genericHeaders(ACME_SECRETS[0], body);
    const res = await post('acme', body, headers);

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 2 } });
    expect(await served([u1, 'acme'], [u2, 'acme'], [u3, 'acme'])).toEqual({ [`${u1}/acme`]: false, [`${u2}/acme`]: false, [`${u3}/acme`]: true });
    await expectHandledRevocation({ provider: 'acme', delivery: headers['webhook-id']!, event: 'revocation', deleted: [u1, u2], accountIds: [a1, a2] });
  });

  test('signed by the standardwebhooks package (independent signer), with non-ASCII bytes in the body, is accepted', async () => {
    const account = unique('acct-ü-');
    const user = unique('g-std-');
    await connect(user, 'acme', account);
    const id = `msg_${randomUUID()}`;
    const body = JSON.stringify({ type: 'révocation', account_id: account });
    const signature = new Webhook(ACME_SECRETS[0]).sign(id, new Date(vault.clock.now()), body);

    const res = await post('acme', body, { 'webhook-id': id, 'webhook-timestamp': String(nowSeconds()), 'webhook-signature': signature });

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: false });
    await expectHandledRevocation({ provider: 'acme', delivery: id, event: 'révocation', deleted: [user], accountIds: [account] });
  });

  test('a plain (non-whsec_) secret is used as its UTF-8 bytes, checked with the standardwebhooks package in raw format', async () => {
    const account = unique('acct-');
    const user = unique('g-plain-');
    await connect(user, 'acme-plain', account);
    const id = `msg_${randomUUID()}`;
    const body = JSON.stringify({ account_id: account });
    const signature = new Webhook(ACME_PLAIN_SECRET, { format: 'raw' }).sign(id, new Date(vault.clock.now()), body);
    expect(signature).toBe(genericSignature(ACME_PLAIN_SECRET, id, nowSeconds(), body));

    const res = await post('acme-plain', body, { 'webhook-id': id, 'webhook-timestamp': String(nowSeconds()), 'webhook-signature': signature });

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });
    expect(await served([user, 'acme-plain'])).toEqual({ [`${user}/acme-plain`]: false });
  });

  test('forged with a secret the vault does not hold → 401, nothing deleted, and the delivery id is not burnt', async () => {
    const account = unique('acct-');
    const user = unique('g-forged-');
    await connect(user, 'acme', account);
    const before = await inboundCount('acme', 'rejected');
    const body = JSON.stringify({ account_id: account });
    const id = `msg_${randomUUID()}`;

    const forged = await post('acme', body, genericHeaders(FOREIGN_SECRET, body, { id }));
    expectError(forged, 401, 'unauthorized');
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: true });
    expect(await inboundCount('acme', 'rejected')).toBe(before + 1);
    expect(revokedEvents('acme', [user])).toEqual([]);
    expect(webhookAudits(id)).toEqual([]);

    // The genuine delivery with that id is still handled: a forgery cannot pre-empt it.
    const genuine = await post('acme', body, genericHeaders(ACME_SECRETS[0], body, { id }));
    expect({ status: genuine.status, body: genuine.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });
  });

  test('a body changed by one byte after signing → 401, neither the signed nor the substituted account loses its credential', async () => {
    const base = unique('acct-');
    const [signedUser, substitutedUser] = [unique('g-tamper-'), unique('g-tamper-')];
    await connect(signedUser, 'acme', `${base}a`);
    await connect(substitutedUser, 'acme', `${base}b`);
    const body = JSON.stringify({ account_id: `${base}a` });
    const headers = genericHeaders(ACME_SECRETS[0], body);

    const res = await post('acme', tamper(body, 'a"', 'b'), headers);

    expectError(res, 401, 'unauthorized');
    expect(await served([signedUser, 'acme'], [substitutedUser, 'acme'])).toEqual({ [`${signedUser}/acme`]: true, [`${substitutedUser}/acme`]: true });
  });

  test.each(['webhook-id', 'webhook-timestamp', 'webhook-signature'])('without the %s header → 401, nothing deleted', async (missing) => {
    const account = unique('acct-');
    const user = unique('g-missing-');
    await connect(user, 'acme', account);
    const body = JSON.stringify({ account_id: account });
    const headers = genericHeaders(ACME_SECRETS[0], body);
    delete headers[missing];

    expectError(await post('acme', body, headers), 401, 'unauthorized');
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: true });
  });

  test.each([
    ['stale', -(TOLERANCE_SECONDS + 1)],
    ['future', TOLERANCE_SECONDS + 1],
  ])('a %s timestamp beyond the tolerance → 401 even with a valid signature, nothing deleted', async (_label, offset) => {
    const account = unique('acct-');
    const user = unique('g-time-');
    await connect(user, 'acme', account);
    const body = JSON.stringify({ account_id: account });

    const res = await post('acme', body, genericHeaders(ACME_SECRETS[0], body, { timestamp: nowSeconds() + offset }));

    expectError(res, 401, 'unauthorized');
    expect(res.body.error.message).toMatch(/tolerance/);
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: true });
  });

  test('a timestamp exactly at the tolerance is still accepted', async () => {
    const account = unique('acct-');
    const user = unique('g-edge-');
    await connect(user, 'acme', account);
    const body = JSON.stringify({ account_id: account });

    const res = await post('acme', body, genericHeaders(ACME_SECRETS[0], body, { timestamp: nowSeconds() - TOLERANCE_SECONDS }));

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });
  });

  test('a replayed delivery answers duplicate and does not delete the credential the user connected again in between', async () => {
    const account = unique('acct-');
    const user = unique('g-replay-');
    await connect(user, 'acme', account);
    const body = JSON.stringify({ account_id: account });
    const headers = genericHeaders(ACME_SECRETS[0], body);
    const first = await post('acme', body, headers);
    expect({ status: first.status, body: first.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: false });

    await connect(user, 'acme', account);
    const duplicates = await inboundCount('acme', 'duplicate');
    const replay = await post('acme', body, headers);

    expect({ status: replay.status, body: replay.body }).toEqual({ status: 200, body: { status: 'duplicate' } });
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: true });
    expect(revokedEvents('acme', [user])).toHaveLength(1);
    expect(webhookAudits(headers['webhook-id']!)).toHaveLength(1);
    expect(await inboundCount('acme', 'duplicate')).toBe(duplicates + 1);
  });

  test('rotated secrets: signed with the second configured secret is accepted, as is a header carrying an unknown and a known signature', async () => {
    const [a1, a2] = [unique('acct-'), unique('acct-')];
    const [u1, u2] = [unique('g-rot-'), unique('g-rot-')];
    await connect(u1, 'acme', a1);
    await connect(u2, 'acme', a2);

    const body1 = JSON.stringify({ account_id: a1 });
    const res1 = await post('acme', body1, genericHeaders(ACME_SECRETS[1], body1));
    expect({ status: res1.status, body: res1.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });

    // A sender mid-rotation signs with both its old and new secret (Standard Webhooks: space-separated).
    const body2 = JSON.stringify({ account_id: a2 });
    const id = `msg_${randomUUID()}`;
    const at = nowSeconds();
    const both = `${genericSignature(FOREIGN_SECRET, id, at, body2)} ${genericSignature(ACME_SECRETS[1], id, at, body2)}`;
    const res2 = await post('acme', body2, { 'webhook-id': id, 'webhook-timestamp': String(at), 'webhook-signature': both });
    expect({ status: res2.status, body: res2.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });

    expect(await served([u1, 'acme'], [u2, 'acme'])).toEqual({ [`${u1}/acme`]: false, [`${u2}/acme`]: false });
  });

  test('a stale account index entry (user re-connected with another account) deletes nothing and is removed from the index', async () => {
    const [oldAccount, newAccount] = [unique('acct-old-'), unique('acct-new-')];
    const user = unique('g-stale-');
    await connect(user, 'acme', oldAccount);
    await connect(user, 'acme', newAccount);
    // The premise: the index still names the user under the old account.
    expect(await inspect.smembers(vault.deps.keys.accountIndex('acme', oldAccount))).toEqual([user]);
    expect(await inspect.smembers(vault.deps.keys.accountIndex('acme', newAccount))).toEqual([user]);

    const body = JSON.stringify({ account_id: oldAccount });
    const res = await post('acme', body, genericHeaders(ACME_SECRETS[0], body));

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 0 } });
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: true });
    expect(revokedEvents('acme', [user])).toEqual([]);
    expect(await inspect.smembers(vault.deps.keys.accountIndex('acme', oldAccount))).toEqual([]);
    expect(await inspect.smembers(vault.deps.keys.accountIndex('acme', newAccount))).toEqual([user]);
  });

  test('contrast: DELETE through the API on the same provider does revoke upstream, a webhook delete never does', async () => {
    const [viaWebhook, viaApi] = [unique('g-up-'), unique('g-up-')];
    const account = unique('acct-');
    await connect(viaWebhook, 'acme', account);
    await connect(viaApi, 'acme', unique('acct-'));
    const body = JSON.stringify({ account_id: account });
    expect((await post('acme', body, genericHeaders(ACME_SECRETS[0], body))).body).toEqual({ status: 'revoked', deleted: 1 });

    await request(vault.app).delete(`/tokens/${viaApi}/acme`).set('Authorization', vault.auth(vault.keys.writer)).expect(204);
    const deadline = Date.now() + 5000;
    while (!upstreamRevocations.some((call) => call.token === accessToken(viaApi, 'acme')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    expect(upstreamRevocations.filter((call) => call.provider === 'acme' && [accessToken(viaApi, 'acme'), accessToken(viaWebhook, 'acme')].includes(call.token))).toEqual([
      { provider: 'acme', token: accessToken(viaApi, 'acme') },
    ]);
    expect(revokedEvents('acme', [viaWebhook, viaApi]).map((event) => ('reason' in event ? event.reason : undefined))).toEqual(
      viaWebhook.localeCompare(viaApi) < 0 ? ['provider_webhook', 'deleted'] : ['deleted', 'provider_webhook'],
    );
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * credential-store.ts promises that the account index "may name users who no longer match ...
 * but never misses one". These tests hold a webhook between two of its Redis commands (a spy on
 * store.unindexAccount that lets another request through first, then runs the real SREM) to play
 * a user who connects again, from another request or replica, at that moment. Then the next
 * revocation of that account must still find the user.
 */
describe('account index while a user re-connects during a revocation', () => {
  async function withReconnectBeforeUnindex(user: string, accountId: string, run: () => Promise<void>): Promise<boolean> {
    const store = vault.deps.store;
    const original = store.unindexAccount.bind(store);
    let interleaved = false;
    const spy = jest.spyOn(store, 'unindexAccount').mockImplementation(async (providerId, account, who) => {
      if (!interleaved && who === user && account === accountId) {
        interleaved = true;
        await connect(user, 'acme', accountId);
      }
      return original(providerId, account, who);
    });
    try {
      await run();
    } finally {
      spy.mockRestore();
    }
    return interleaved;
  }

  async function secondRevocation(user: string, account: string) {
    const body = JSON.stringify({ account_id: account });
    const res = await post('acme', body, genericHeaders(ACME_SECRETS[0], body));
    return { answer: res.body as unknown, stillServed: (await served([user, 'acme']))[`${user}/acme`] };
  }

  test('re-connected between the delete and the index clean-up: the next revocation of that account deletes the new credential', async () => {
    const account = unique('acct-');
    const user = unique('race-del-');
    await connect(user, 'acme', account);
    const body = JSON.stringify({ account_id: account });

    const interleaved = await withReconnectBeforeUnindex(user, account, async () => {
      expect((await post('acme', body, genericHeaders(ACME_SECRETS[0], body))).body).toEqual({ status: 'revoked', deleted: 1 });
    });

    expect(interleaved).toBe(true);
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: true });
    const indexed = await inspect.smembers(vault.deps.keys.accountIndex('acme', account));
    expect({ indexed, ...(await secondRevocation(user, account)) }).toEqual({ indexed: [user], answer: { status: 'revoked', deleted: 1 }, stillServed: false });
  });

  test('re-connected with the stale account between the re-check and the index clean-up: the next revocation deletes the new credential', async () => {
    const [oldAccount, otherAccount] = [unique('acct-'), unique('acct-')];
    const user = unique('race-stale-');
    await connect(user, 'acme', oldAccount);
    await connect(user, 'acme', otherAccount);
    const body = JSON.stringify({ account_id: oldAccount });

    const interleaved = await withReconnectBeforeUnindex(user, oldAccount, async () => {
      expect((await post('acme', body, genericHeaders(ACME_SECRETS[0], body))).body).toEqual({ status: 'revoked', deleted: 0 });
    });

    expect(interleaved).toBe(true);
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: true });
    const indexed = await inspect.smembers(vault.deps.keys.accountIndex('acme', oldAccount));
    expect({ indexed, ...(await secondRevocation(user, oldAccount)) }).toEqual({ indexed: [user], answer: { status: 'revoked', deleted: 1 }, stillServed: false });
  });
});

// ---------------------------------------------------------------------------------------------

describe('GitHub verifier (X-Hub-Signature-256, X-GitHub-Delivery)', () => {
  test('github_app_authorization revoked deletes the users stored under the sender id and under the login, and no one else', async () => {
    const senderId = 5_000_000 + counter;
    const login = unique('octo-');
    const [byId1, byId2, byLogin, other, otherProvider] = ['id1', 'id2', 'login', 'other', 'otherprov'].map((name) => unique(`h-${name}-`)) as [string, string, string, string, string];
    await connect(byId1, 'gh', String(senderId));
    await connect(byId2, 'gh', String(senderId));
    await connect(byLogin, 'gh', login);
    await connect(other, 'gh', String(senderId + 1));
    await connect(otherProvider, 'github', String(senderId));
    const before = await inboundCount('gh', 'revoked');

    const body = githubRevocation(senderId, login);
    const headers = githubHeaders(GH_SECRETS[0], body);
    const res = await post('gh', body, headers);

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 3 } });
    expect(await served([byId1, 'gh'], [byId2, 'gh'], [byLogin, 'gh'], [other, 'gh'], [otherProvider, 'github'])).toEqual({
      [`${byId1}/gh`]: false,
      [`${byId2}/gh`]: false,
      [`${byLogin}/gh`]: false,
      [`${other}/gh`]: true,
      [`${otherProvider}/github`]: true,
    });
    await expectHandledRevocation({
      provider: 'gh',
      delivery: headers['X-GitHub-Delivery']!,
      event: 'github_app_authorization.revoked',
      deleted: [byId1, byId2, byLogin],
      accountIds: [String(senderId), login],
    });
    expect(revokedEvents('github', [otherProvider])).toEqual([]);
    expect(await inboundCount('gh', 'revoked')).toBe(before + 1);
    // GitHub signs no timestamp: delivery ids are remembered for 30 days.
    const ttl = await seenTtl('gh', headers['X-GitHub-Delivery']!);
    expect(ttl).toBeGreaterThan(30 * 24 * 3600 - 10);
    expect(ttl).toBeLessThanOrEqual(30 * 24 * 3600);
  });

  test('forged with another secret → 401, nothing deleted', async () => {
    const user = unique('h-forged-');
    const login = unique('octo-');
    await connect(user, 'gh', login);
    const body = githubRevocation(1, login);

    expectError(await post('gh', body, githubHeaders('not-the-gh-secret', body)), 401, 'unauthorized');
    expect(await served([user, 'gh'])).toEqual({ [`${user}/gh`]: true });
  });

  test('a body changed by one byte after signing → 401, nothing deleted', async () => {
    const login = unique('octo-');
    const [signedUser, substitutedUser] = [unique('h-tamper-'), unique('h-tamper-')];
    await connect(signedUser, 'gh', `${login}a`);
    await connect(substitutedUser, 'gh', `${login}b`);
    const body = githubRevocation(42, `${login}a`);

    expectError(await post('gh', tamper(body, 'a"', 'b'), githubHeaders(GH_SECRETS[0], body)), 401, 'unauthorized');
    expect(await served([signedUser, 'gh'], [substitutedUser, 'gh'])).toEqual({ [`${signedUser}/gh`]: true, [`${substitutedUser}/gh`]: true });
  });

  test('without X-Hub-Signature-256, or with a signature lacking the sha256= prefix → 401, nothing deleted', async () => {
    const user = unique('h-missing-');
    const login = unique('octo-');
    await connect(user, 'gh', login);
    const body = githubRevocation(7, login);
    const headers = githubHeaders(GH_SECRETS[0], body);

    const { 'X-Hub-Signature-256': signature, ...unsigned } = headers;
    expectError(await post('gh', body, unsigned), 401, 'unauthorized');
    expectError(await post('gh', body, { ...unsigned, 'X-Hub-Signature-256': signature!.slice('sha256='.length) }), 401, 'unauthorized');
    expect(await served([user, 'gh'])).toEqual({ [`${user}/gh`]: true });
  });

  test('a verified revocation without X-GitHub-Delivery → 400 (it could not be deduplicated), nothing deleted', async () => {
    const user = unique('h-nodelivery-');
    const login = unique('octo-');
    await connect(user, 'gh', login);
    const body = githubRevocation(8, login);
    const { 'X-GitHub-Delivery': _delivery, ...headers } = githubHeaders(GH_SECRETS[0], body);

    expectError(await post('gh', body, headers), 400, 'invalid_request');
    expect(await served([user, 'gh'])).toEqual({ [`${user}/gh`]: true });
  });

  test('a replayed delivery (GitHub signs no timestamp) answers duplicate and does not delete the re-connected credential', async () => {
    const login = unique('octo-');
    const user = unique('h-replay-');
    await connect(user, 'gh', login);
    const body = githubRevocation(9, login);
    const headers = githubHeaders(GH_SECRETS[0], body);
    expect((await post('gh', body, headers)).body).toEqual({ status: 'revoked', deleted: 1 });
    expect(await served([user, 'gh'])).toEqual({ [`${user}/gh`]: false });

    await connect(user, 'gh', login);
    const replay = await post('gh', body, headers);

    expect({ status: replay.status, body: replay.body }).toEqual({ status: 200, body: { status: 'duplicate' } });
    expect(await served([user, 'gh'])).toEqual({ [`${user}/gh`]: true });
    expect(revokedEvents('gh', [user])).toHaveLength(1);
  });

  test('rotated secrets: signed with the second configured secret is accepted', async () => {
    const login = unique('octo-');
    const user = unique('h-rot-');
    await connect(user, 'gh', login);
    const body = githubRevocation(10, login);

    const res = await post('gh', body, githubHeaders(GH_SECRETS[1], body));

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });
    expect(await served([user, 'gh'])).toEqual({ [`${user}/gh`]: false });
  });

  test('ping is verified and ignored', async () => {
    const before = await inboundCount('gh', 'ignored');
    const body = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 123, hook: { type: 'App', id: 123, events: [] } });

    const res = await post('gh', body, githubHeaders(GH_SECRETS[0], body, { event: 'ping' }));

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'ignored', event: 'ping' } });
    expect(await inboundCount('gh', 'ignored')).toBe(before + 1);
    expectError(await post('gh', body, githubHeaders('not-the-gh-secret', body, { event: 'ping' })), 401, 'unauthorized');
  });
});

// ---------------------------------------------------------------------------------------------

describe('Slack verifier (v0 signing secret)', () => {
  test('tokens_revoked deletes users stored as "<team>:<user>" and as "<user>", keeps other users and other providers', async () => {
    const team = unique('T');
    const [userId, botId] = [unique('U'), unique('B')];
    const [shared1, shared2, bare, bot, other, otherProvider] = ['s1', 's2', 'bare', 'bot', 'other', 'otherprov'].map((name) => unique(`s-${name}-`)) as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    await connect(shared1, 'slack', `${team}:${userId}`);
    await connect(shared2, 'slack', `${team}:${userId}`);
    await connect(bare, 'slack', userId);
    await connect(bot, 'slack', `${team}:${botId}`);
    await connect(other, 'slack', `${team}:${unique('U')}`);
    await connect(otherProvider, 'acme', `${team}:${userId}`);
    const before = await inboundCount('slack', 'revoked');

    const eventId = unique('Ev');
    const body = slackTokensRevoked(eventId, team, { oauth: [userId], bot: [botId] });
    const res = await post('slack', body, slackHeaders(SLACK_SECRETS[0], body));

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 4 } });
    expect(await served([shared1, 'slack'], [shared2, 'slack'], [bare, 'slack'], [bot, 'slack'], [other, 'slack'], [otherProvider, 'acme'])).toEqual({
      [`${shared1}/slack`]: false,
      [`${shared2}/slack`]: false,
      [`${bare}/slack`]: false,
      [`${bot}/slack`]: false,
      [`${other}/slack`]: true,
      [`${otherProvider}/acme`]: true,
    });
    await expectHandledRevocation({
      provider: 'slack',
      delivery: eventId,
      event: 'tokens_revoked',
      deleted: [shared1, shared2, bare, bot],
      accountIds: [`${team}:${userId}`, userId, `${team}:${botId}`, botId],
    });
    expect(revokedEvents('acme', [otherProvider])).toEqual([]);
    expect(await inboundCount('slack', 'revoked')).toBe(before + 1);
    const ttl = await seenTtl('slack', eventId);
    expect(ttl).toBeGreaterThan(2 * TOLERANCE_SECONDS - 10);
    expect(ttl).toBeLessThanOrEqual(2 * TOLERANCE_SECONDS);
  });

  test('app_uninstalled deletes the users stored under the team id', async () => {
    const team = unique('T');
    const [u1, u2, kept] = [unique('s-uninst-'), unique('s-uninst-'), unique('s-uninst-')];
    await connect(u1, 'slack', team);
    await connect(u2, 'slack', team);
    await connect(kept, 'slack', unique('T'));
    const eventId = unique('Ev');
    const body = JSON.stringify({ team_id: team, event: { type: 'app_uninstalled' }, type: 'event_callback', event_id: eventId, event_time: nowSeconds() });

    const res = await post('slack', body, slackHeaders(SLACK_SECRETS[0], body));

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 2 } });
    expect(await served([u1, 'slack'], [u2, 'slack'], [kept, 'slack'])).toEqual({ [`${u1}/slack`]: false, [`${u2}/slack`]: false, [`${kept}/slack`]: true });
    await expectHandledRevocation({ provider: 'slack', delivery: eventId, event: 'app_uninstalled', deleted: [u1, u2], accountIds: [team] });
  });

  test('forged with another signing secret → 401, nothing deleted', async () => {
    const team = unique('T');
    const user = unique('s-forged-');
    await connect(user, 'slack', team);
    const body = JSON.stringify({ team_id: team, event: { type: 'app_uninstalled' }, type: 'event_callback', event_id: unique('Ev') });

    expectError(await post('slack', body, slackHeaders('not-the-slack-signing-secret', body)), 401, 'unauthorized');
    expect(await served([user, 'slack'])).toEqual({ [`${user}/slack`]: true });
  });

  test('a body changed by one byte after signing → 401, nothing deleted', async () => {
    const team = unique('T');
    const [signedUser, substitutedUser] = [unique('s-tamper-'), unique('s-tamper-')];
    await connect(signedUser, 'slack', `${team}a`);
    await connect(substitutedUser, 'slack', `${team}b`);
    const body = JSON.stringify({ type: 'event_callback', event_id: unique('Ev'), event: { type: 'app_uninstalled' }, team_id: `${team}a` });

    expectError(await post('slack', tamper(body, 'a"', 'b'), slackHeaders(SLACK_SECRETS[0], body)), 401, 'unauthorized');
    expect(await served([signedUser, 'slack'], [substitutedUser, 'slack'])).toEqual({ [`${signedUser}/slack`]: true, [`${substitutedUser}/slack`]: true });
  });

  test.each(['X-Slack-Request-Timestamp', 'X-Slack-Signature'])('without %s → 401, nothing deleted', async (missing) => {
    const team = unique('T');
    const user = unique('s-missing-');
    await connect(user, 'slack', team);
    const body = JSON.stringify({ team_id: team, event: { type: 'app_uninstalled' }, type: 'event_callback', event_id: unique('Ev') });
    const headers = slackHeaders(SLACK_SECRETS[0], body);
    delete headers[missing];

    expectError(await post('slack', body, headers), 401, 'unauthorized');
    expect(await served([user, 'slack'])).toEqual({ [`${user}/slack`]: true });
  });

  test.each([
    ['stale', -(TOLERANCE_SECONDS + 1)],
    ['future', TOLERANCE_SECONDS + 1],
  ])('a %s timestamp beyond the tolerance → 401 even with a valid signature, nothing deleted', async (_label, offset) => {
    const team = unique('T');
    const user = unique('s-time-');
    await connect(user, 'slack', team);
    const body = JSON.stringify({ team_id: team, event: { type: 'app_uninstalled' }, type: 'event_callback', event_id: unique('Ev') });

    const res = await post('slack', body, slackHeaders(SLACK_SECRETS[0], body, { timestamp: nowSeconds() + offset }));

    expectError(res, 401, 'unauthorized');
    expect(res.body.error.message).toMatch(/tolerance/);
    expect(await served([user, 'slack'])).toEqual({ [`${user}/slack`]: true });
  });

  test('a replayed delivery answers duplicate and does not delete the re-connected credential', async () => {
    const team = unique('T');
    const user = unique('s-replay-');
    await connect(user, 'slack', team);
    const body = JSON.stringify({ team_id: team, event: { type: 'app_uninstalled' }, type: 'event_callback', event_id: unique('Ev') });
    const headers = slackHeaders(SLACK_SECRETS[0], body);
    expect((await post('slack', body, headers)).body).toEqual({ status: 'revoked', deleted: 1 });

    await connect(user, 'slack', team);
    const replay = await post('slack', body, headers);

    expect({ status: replay.status, body: replay.body }).toEqual({ status: 200, body: { status: 'duplicate' } });
    expect(await served([user, 'slack'])).toEqual({ [`${user}/slack`]: true });
    expect(revokedEvents('slack', [user])).toHaveLength(1);
  });

  test('a retry (X-Slack-Retry-Num: 1) of a handled event_id answers duplicate and deletes nothing, not even a user connected since', async () => {
    const team = unique('T');
    const userId = unique('U');
    const [first, reconnected, newcomer] = [unique('s-retry-'), unique('s-retry-'), unique('s-retry-')];
    await connect(first, 'slack', `${team}:${userId}`);
    await connect(reconnected, 'slack', userId);
    const eventId = unique('Ev');
    const body = slackTokensRevoked(eventId, team, { oauth: [userId] });
    expect((await post('slack', body, slackHeaders(SLACK_SECRETS[0], body))).body).toEqual({ status: 'revoked', deleted: 2 });

    await connect(reconnected, 'slack', userId);
    await connect(newcomer, 'slack', `${team}:${userId}`);
    const before = await inboundCount('slack', 'revoked');
    // Slack signs each retry afresh, with a new timestamp.
    const retry = await post('slack', body, { ...slackHeaders(SLACK_SECRETS[0], body, { timestamp: nowSeconds() + 3 }), 'X-Slack-Retry-Num': '1', 'X-Slack-Retry-Reason': 'http_timeout' });

    expect({ status: retry.status, body: retry.body }).toEqual({ status: 200, body: { status: 'duplicate' } });
    expect(await served([first, 'slack'], [reconnected, 'slack'], [newcomer, 'slack'])).toEqual({
      [`${first}/slack`]: false,
      [`${reconnected}/slack`]: true,
      [`${newcomer}/slack`]: true,
    });
    expect(revokedEvents('slack', [reconnected, newcomer])).toHaveLength(1);
    expect(webhookAudits(eventId)).toHaveLength(1);
    expect(await inboundCount('slack', 'revoked')).toBe(before);
  });

  test('rotated secrets: signed with the second configured secret is accepted', async () => {
    const team = unique('T');
    const user = unique('s-rot-');
    await connect(user, 'slack', team);
    const body = JSON.stringify({ team_id: team, event: { type: 'app_uninstalled' }, type: 'event_callback', event_id: unique('Ev') });

    const res = await post('slack', body, slackHeaders(SLACK_SECRETS[1], body));

    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });
    expect(await served([user, 'slack'])).toEqual({ [`${user}/slack`]: false });
  });

  test('url_verification is answered with the challenge; a forged one → 401', async () => {
    const challenge = `3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P-${randomBytes(4).toString('hex')}`;
    const body = JSON.stringify({ token: 'Jhj5dZrVaK7ZwHHjRyZWjbDl', challenge, type: 'url_verification' });

    const res = await post('slack', body, slackHeaders(SLACK_SECRETS[0], body));
    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { challenge } });

    expectError(await post('slack', body, slackHeaders('not-the-slack-signing-secret', body)), 401, 'unauthorized');
  });
});

// ---------------------------------------------------------------------------------------------

describe('every verifier', () => {
  test.each([
    ['acme', 'truncated JSON', (body: string) => genericHeaders(ACME_SECRETS[0], body), '{"account_id": "x"'],
    ['acme', 'both account_id and account_ids', (body: string) => genericHeaders(ACME_SECRETS[0], body), '{"account_id":"x","account_ids":["y"]}'],
    ['gh', 'truncated JSON', (body: string) => githubHeaders(GH_SECRETS[0], body), '{"action":"revoked","sender":{"id":1'],
    ['gh', 'revocation without a sender', (body: string) => githubHeaders(GH_SECRETS[0], body), '{"action":"revoked"}'],
    ['slack', 'truncated JSON', (body: string) => slackHeaders(SLACK_SECRETS[0], body), '{"type":"event_callback","event_id":"Ev1"'],
    ['slack', 'tokens_revoked without a team_id', (body: string) => slackHeaders(SLACK_SECRETS[0], body), '{"type":"event_callback","event_id":"Ev2","event":{"type":"tokens_revoked","tokens":{"oauth":["x"]}}}'],
  ])('%s: verified but not understood (%s) → 400 invalid_request, nothing deleted', async (providerId, _label, sign, body) => {
    const users = [unique('m-'), unique('m-')];
    await connect(users[0]!, providerId, 'x');
    await connect(users[1]!, providerId, 'y');
    const before = await inboundCount(providerId, 'invalid');

    expectError(await post(providerId, body, sign(body)), 400, 'invalid_request');

    expect(Object.values(await served([users[0]!, providerId], [users[1]!, providerId]))).toEqual([true, true]);
    expect(await inboundCount(providerId, 'invalid')).toBe(before + 1);
  });

  test('404 for a configured provider without inboundWebhook and for an unknown provider', async () => {
    const body = JSON.stringify({ account_id: 'x' });
    expectError(await post('nohook', body, genericHeaders(ACME_SECRETS[0], body)), 404, 'not_found');
    expectError(await post('no-such-provider', body, genericHeaders(ACME_SECRETS[0], body)), 404, 'not_found');
  });

  test('the route needs no Authorization header (and ignores an unknown bearer key)', async () => {
    const [a1, a2] = [unique('acct-'), unique('acct-')];
    const [u1, u2] = [unique('p-'), unique('p-')];
    await connect(u1, 'acme', a1);
    await connect(u2, 'acme', a2);

    const body1 = JSON.stringify({ account_id: a1 });
    // No .set('Authorization', ...) anywhere on this request.
    const plain = await request(vault.app).post('/webhooks/acme/revocation').set('Content-Type', 'application/json').set(genericHeaders(ACME_SECRETS[0], body1)).send(body1);
    expect({ status: plain.status, body: plain.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });

    const body2 = JSON.stringify({ account_id: a2 });
    const withBogusKey = await post('acme', body2, { ...genericHeaders(ACME_SECRETS[0], body2), Authorization: 'Bearer tv_not_a_key' });
    expect({ status: withBogusKey.status, body: withBogusKey.body }).toEqual({ status: 200, body: { status: 'revoked', deleted: 1 } });
  });

  test('a validly signed body larger than server.bodyLimit → 413 payload_too_large, nothing deleted', async () => {
    const account = unique('acct-');
    const user = unique('big-');
    await connect(user, 'acme', account);
    const ids = [account];
    while (JSON.stringify({ account_ids: ids }).length <= BODY_LIMIT_BYTES) ids.push(unique('filler-account-'));
    const body = JSON.stringify({ account_ids: ids });

    expectError(await post('acme', body, genericHeaders(ACME_SECRETS[0], body)), 413, 'payload_too_large');
    expect(await served([user, 'acme'])).toEqual({ [`${user}/acme`]: true });
  });
});
