import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { startVault, type TestVault } from '../../helpers/app';
import { dumpRedis, listen, secretsIn, sleep, waitFor, type Listening } from '../../helpers/checks';
import { DEVICE_CODE_GRANT, OidcServer, type RecordedTokenRequest } from '../../helpers/providers/oidc';
import { RedisServer } from '../../helpers/redis-server';

/**
 * The RFC 8628 device flow (DESIGN §4 POST /connect/:provider with flow "device", GET
 * /connect/sessions/:id) against oidc-provider's real device flow: the user's half goes through
 * the provider's own /device pages, the vault's half is the DevicePoller. Most scenarios run
 * the poller by hand (tick()) for determinism; the two-replica scenario runs it for real on
 * both replicas at pollMs 100.
 *
 * The provider answers interval 1 s; each scenario has its own vault under its own key prefix,
 * so one scenario's sessions never come due in another's tick.
 */

const DEVICE_APP_KEY = `tv_test_device_app_${randomBytes(16).toString('hex')}`;
const OTHER_APP_KEY = `tv_test_other_app_${randomBytes(16).toString('hex')}`;
const INTERVAL_MS = 1000;
const EXPIRES_IN_SECONDS = 600;

let redis: RedisServer;
let inspect: Redis;
let oidc: OidcServer;
let prefixes = 0;
const opened: TestVault[] = [];
const listening: Listening[] = [];

beforeAll(async () => {
  [redis, oidc] = await Promise.all([RedisServer.start(), OidcServer.start({ deviceIntervalSeconds: 1, accessTtlSeconds: 600 })]);
  inspect = redis.client();
});

afterEach(async () => {
  await Promise.all(listening.splice(0).map((l) => l.close()));
  await Promise.all(opened.splice(0).map((v) => v.close()));
});

afterAll(async () => {
  inspect?.disconnect();
  await oidc?.stop();
  await redis?.stop();
});

beforeEach(async () => {
  await oidc.reset();
});

// ---- helpers ---------------------------------------------------------------------------------

interface VaultOptions {
  keyPrefix?: string;
  shareWith?: TestVault;
  devicePoller?: boolean;
}

/** A vault with providers `oidc` (device flow), `nodevice` and `machine` (a client without the device grant), and callers device-app and other-app; its own key prefix unless given. */
async function openVault(options: VaultOptions = {}): Promise<TestVault> {
  const vault = await startVault({
    redis,
    keyPrefix: options.keyPrefix ?? `tv:device${++prefixes}:`,
    ...(options.shareWith ? { keys: options.shareWith.keys, keyringJson: options.shareWith.keyringJson, clock: options.shareWith.clock } : {}),
    ...(options.devicePoller ? { devicePoller: true, deps: { pollMs: 100 } } : {}),
    config: (standard) => {
      const providers = standard.providers as Record<string, Record<string, unknown>>;
      const client = { type: 'oauth2', clientId: oidc.clients.basic.id, clientSecret: oidc.clients.basic.secret, clientAuth: 'client_secret_basic', tokenUrl: oidc.tokenUrl };
      providers.oidc = { ...client, deviceAuthorizationUrl: oidc.deviceAuthorizationUrl, userinfoUrl: oidc.userinfoUrl, scopes: ['openid', 'offline_access'] };
      providers.nodevice = { ...client, authorizationUrl: oidc.authorizationUrl, scopes: ['openid'] };
      // A client the provider does not allow the device grant.
      providers.machine = { ...client, clientId: oidc.clients.cc.id, clientSecret: oidc.clients.cc.secret, deviceAuthorizationUrl: oidc.deviceAuthorizationUrl, scopes: ['openid'] };
      (standard.callers as unknown[]).push(
        { name: 'device-app', key: DEVICE_APP_KEY, scopes: ['connect', 'tokens:read'], providers: ['oidc', 'nodevice', 'machine'] },
        { name: 'other-app', key: OTHER_APP_KEY, scopes: ['connect', 'tokens:read'], providers: ['oidc'] },
      );
      return standard;
    },
  });
  opened.push(vault);
  return vault;
}

const bearer = (key: string) => `Bearer ${key}`;

const startDevice = (target: TestVault | Listening, user: string, provider = 'oidc') =>
  request('url' in target ? target.url : target.app)
    .post(`/connect/${provider}`)
    .set('Authorization', bearer(DEVICE_APP_KEY))
    .send({ user, flow: 'device' });

const session = (target: TestVault | Listening, id: string, key = DEVICE_APP_KEY) =>
  request('url' in target ? target.url : target.app).get(`/connect/sessions/${id}`).set('Authorization', bearer(key));

const getToken = (vault: TestVault, user: string) => request(vault.app).get(`/tokens/${user}/oidc`).set('Authorization', bearer(DEVICE_APP_KEY));

/** Runs the poller by hand until a round polls something (the first poll is due one interval after the start). */
async function tickWhenDue(vault: TestVault, timeoutMs = 3000): Promise<number> {
  return waitFor(async () => (await vault.deps.devicePoller.tick()) || false, 'a device session to come due', timeoutMs);
}

async function devicePolls(): Promise<RecordedTokenRequest[]> {
  return (await oidc.requests()).filter((r) => r.path === '/token' && r.form.grant_type === DEVICE_CODE_GRANT);
}

/** When the session's next poll is due, in ms from now (Redis time); null when it is not scheduled. */
async function nextPollInMs(vault: TestVault, id: string): Promise<number | null> {
  const [score, [seconds, micros]] = await Promise.all([inspect.zscore(vault.deps.keys.devicePolls(), id), inspect.time()]);
  if (score === null) return null;
  return Number(score) - (Number(seconds) * 1000 + Math.floor(Number(micros) / 1000));
}

const basicAuth = () => `Basic ${Buffer.from(`${oidc.clients.basic.id}:${oidc.clients.basic.secret}`).toString('base64')}`;

// ---- scenarios -------------------------------------------------------------------------------

test('start → pending polls → the user approves at the provider → connected: account id from the ID token, the credential stored and served', async () => {
  const vault = await openVault();
  const started = await startDevice(vault, 'dev-alice');
  expect(started.status).toBe(201);
  const userCode = started.body.user_code as string;
  expect(started.body).toEqual({
    id: expect.stringMatching(/^cs_[A-Za-z0-9_-]{22}$/),
    flow: 'device',
    user_code: expect.stringMatching(/^[A-Z]{4}-[A-Z]{4}$/),
    verification_uri: oidc.deviceVerificationUrl,
    verification_uri_complete: `${oidc.deviceVerificationUrl}?user_code=${userCode}`,
    interval: 1,
    expires_at: new Date(vault.clock.now() + EXPIRES_IN_SECONDS * 1000).toISOString(),
  });
  const id = started.body.id as string;
  // The device authorization request: the configured client and scopes.
  const [authorization] = (await oidc.requests()).filter((r) => r.path === '/device/auth');
  expect(authorization).toMatchObject({ form: { client_id: oidc.clients.basic.id, scope: 'openid offline_access' } });

  const pending = await session(vault, id);
  expect(pending.status).toBe(200);
  expect(pending.body).toEqual({
    id,
    provider: 'oidc',
    user: 'dev-alice',
    flow: 'device',
    status: 'pending',
    expires_at: started.body.expires_at,
    user_code: userCode,
    verification_uri: oidc.deviceVerificationUrl,
    verification_uri_complete: started.body.verification_uri_complete,
    interval: 1,
  });
  // Only the caller that started the flow may read it.
  expect((await session(vault, id, OTHER_APP_KEY)).status).toBe(404);

  // Not due before one interval: the provider is not asked yet.
  expect(await vault.deps.devicePoller.tick()).toBe(0);
  expect(await devicePolls()).toHaveLength(0);

  // Before approval: one poll, authorization_pending, still pending.
  expect(await tickWhenDue(vault)).toBe(1);
  const [firstPoll, ...more] = await devicePolls();
  expect(more).toHaveLength(0);
  expect(firstPoll!.headers.authorization).toBe(basicAuth());
  expect(firstPoll!.form).toEqual({ grant_type: DEVICE_CODE_GRANT, device_code: expect.any(String) });
  const deviceCode = firstPoll!.form.device_code!;
  expect((await session(vault, id)).body).toMatchObject({ status: 'pending', interval: 1 });
  expect(await nextPollInMs(vault, id)).toBeGreaterThan(INTERVAL_MS - 200);

  const approval = await oidc.approveDevice(userCode, { accountId: 'device-acct-alice' });
  expect(approval.outcome).toBe('approved');

  expect(await tickWhenDue(vault)).toBe(1);
  const connected = await session(vault, id);
  expect(connected.body).toMatchObject({ status: 'connected', account_id: 'device-acct-alice', version: expect.any(Number) });
  expect(connected.body).not.toHaveProperty('error');
  const polls = await devicePolls();
  expect(polls).toHaveLength(2);
  expect(polls.every((p) => p.form.device_code === deviceCode)).toBe(true);

  const token = await getToken(vault, 'dev-alice');
  expect(token.status).toBe(200);
  expect(token.body).toMatchObject({
    user: 'dev-alice',
    provider: 'oidc',
    type: 'oauth2',
    version: connected.body.version,
    account_id: 'device-acct-alice',
    token_type: 'Bearer',
    scope: 'openid offline_access',
    expires_in: 600,
  });
  const accessToken = token.body.access_token as string;
  // The token the vault serves is the one the provider issued for the approved account.
  expect(await oidc.active(accessToken)).toBe(true);
  const userinfo = await fetch(oidc.userinfoUrl, { headers: { authorization: `Bearer ${accessToken}` } });
  expect(((await userinfo.json()) as { sub: string }).sub).toBe('device-acct-alice');

  // Finished: out of the schedule, never polled again.
  expect(await nextPollInMs(vault, id)).toBeNull();
  expect(await vault.deps.devicePoller.tick()).toBe(0);

  // The write is audited as the starting caller's, and no device code or token reached the logs.
  expect(vault.logs.audit()).toContainEqual(
    expect.objectContaining({ action: 'credential.put', caller: 'device-app', user: 'dev-alice', provider: 'oidc', outcome: 'ok', request_id: `connect:${id}` }),
  );
  expect(secretsIn(vault.logs.text(), { deviceCode, accessToken, clientSecret: oidc.clients.basic.secret })).toEqual([]);
  // Redis holds the device code and the tokens sealed only.
  const { values } = await dumpRedis(inspect, vault.deps.keys.prefix);
  expect(secretsIn(values, { accessToken })).toEqual([]);
});

test('slow_down: the interval grows by 5 s, and the next poll waits for it', async () => {
  const vault = await openVault();
  const started = await startDevice(vault, 'dev-bob');
  const id = started.body.id as string;
  await oidc.mode({ mode: 'status', status: 400, body: { error: 'slow_down' }, grantType: DEVICE_CODE_GRANT, times: 1 });

  expect(await tickWhenDue(vault)).toBe(1);
  expect(await devicePolls()).toHaveLength(1);
  expect((await session(vault, id)).body).toMatchObject({ status: 'pending', interval: 6 });
  const next = await nextPollInMs(vault, id);
  expect(next).toBeGreaterThan(6000 - 300);
  expect(next).toBeLessThanOrEqual(6000);

  // Right away, and when the old 1 s interval would have been due: nothing is polled.
  expect(await vault.deps.devicePoller.tick()).toBe(0);
  await sleep(INTERVAL_MS + 200);
  expect(await vault.deps.devicePoller.tick()).toBe(0);
  expect(await devicePolls()).toHaveLength(1);
});

test('the provider answers 503 with Retry-After to a poll: still pending, the next poll waits Retry-After', async () => {
  const vault = await openVault();
  const id = (await startDevice(vault, 'dev-dora')).body.id as string;
  await oidc.mode({ mode: 'status', status: 503, retryAfter: 4, body: { error: 'temporarily_unavailable' }, grantType: DEVICE_CODE_GRANT, times: 1 });

  expect(await tickWhenDue(vault)).toBe(1);
  expect((await session(vault, id)).body).toMatchObject({ status: 'pending', interval: 1 });
  expect(await nextPollInMs(vault, id)).toBeGreaterThan(4000 - 300);
});

test('the user denies at the provider: the session ends in error access_denied and nothing is stored', async () => {
  const vault = await openVault();
  const started = await startDevice(vault, 'dev-carol');
  const id = started.body.id as string;
  expect((await oidc.approveDevice(started.body.user_code as string, { deny: true })).outcome).toBe('denied');

  expect(await tickWhenDue(vault)).toBe(1);
  const denied = await session(vault, id);
  expect(denied.body).toMatchObject({ status: 'error', error: 'access_denied' });
  expect(denied.body).not.toHaveProperty('account_id');
  expect(denied.body).not.toHaveProperty('version');
  expect(await nextPollInMs(vault, id)).toBeNull();
  expect((await getToken(vault, 'dev-carol')).status).toBe(404);
  expect(await inspect.exists(vault.deps.keys.credential('dev-carol', 'oidc'))).toBe(0);
});

test('the code expires before the user approves: status expired, and the provider is polled no more', async () => {
  const vault = await openVault();
  const started = await startDevice(vault, 'dev-erin');
  const id = started.body.id as string;
  vault.clock.advance(EXPIRES_IN_SECONDS * 1000 + 1000);

  // Expired as soon as its time is up, even before the poller looked at it.
  expect((await session(vault, id)).body).toMatchObject({ status: 'expired' });
  // The poller takes it when it comes due and ends it without asking the provider.
  expect(await tickWhenDue(vault)).toBe(1);
  expect((await session(vault, id)).body).toMatchObject({ status: 'expired' });
  expect((await session(vault, id)).body).not.toHaveProperty('error');
  expect(await devicePolls()).toHaveLength(0);
  expect(await nextPollInMs(vault, id)).toBeNull();
  expect(await vault.deps.devicePoller.tick()).toBe(0);
});

test('a provider without deviceAuthorizationUrl: 400, and nothing reaches the provider', async () => {
  const vault = await openVault();
  const res = await startDevice(vault, 'dev-frank', 'nodevice');
  expect(res.status).toBe(400);
  expect(res.body.error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('deviceAuthorizationUrl') });
  expect(await oidc.requests()).toHaveLength(0);
  expect(await inspect.zcard(vault.deps.keys.devicePolls())).toBe(0);
});

test('the provider refuses the device authorization request (this client may not use the device grant): 502 provider_error, the OAuth error logged', async () => {
  const vault = await openVault();
  const res = await startDevice(vault, 'dev-ivy', 'machine');
  expect(res.status).toBe(502);
  expect(res.body.error).toMatchObject({ code: 'provider_error' });
  expect(vault.logs.entries()).toContainEqual(expect.objectContaining({ provider: 'machine', reason: 'invalid_request', msg: 'device authorization refused' }));
  expect(secretsIn(vault.logs.text(), { clientSecret: oidc.clients.cc.secret })).toEqual([]);
  expect(await inspect.zcard(vault.deps.keys.devicePolls())).toBe(0);
});

test('the device authorization endpoint answers 503: POST answers 503 provider_unavailable with its Retry-After, and no session is scheduled', async () => {
  const vault = await openVault();
  await oidc.mode({ endpoint: 'device_authorization', mode: 'status', status: 503, retryAfter: 9, body: { error: 'temporarily_unavailable' }, times: 1 });
  const res = await startDevice(vault, 'dev-gina');
  expect(res.status).toBe(503);
  expect(res.headers['retry-after']).toBe('9');
  expect(res.body.error).toMatchObject({ code: 'provider_unavailable' });
  expect(await inspect.zcard(vault.deps.keys.devicePolls())).toBe(0);

  // The provider is back: the next start works.
  expect((await startDevice(vault, 'dev-gina')).status).toBe(201);
});

test('two replicas polling one session: at most one device-code poll per interval, one credential stored, no secret in either log', async () => {
  const keyPrefix = `tv:device-replicas${++prefixes}:`;
  const a = await openVault({ keyPrefix, devicePoller: true });
  const b = await openVault({ keyPrefix, devicePoller: true, shareWith: a });
  const [httpA, httpB] = await Promise.all([listen(a.app), listen(b.app)]);
  listening.push(httpA, httpB);

  const started = await startDevice(httpA, 'dev-hank');
  expect(started.status).toBe(201);
  const id = started.body.id as string;

  // Both pollers run every 100 ms for a few intervals while the user has not approved yet.
  await sleep(2 * INTERVAL_MS + 600);
  const pendingPolls = await devicePolls();
  expect(pendingPolls.length).toBeGreaterThanOrEqual(2);
  expect(pendingPolls.length).toBeLessThanOrEqual(3);
  // Either replica may read the session (same caller).
  expect((await session(httpB, id)).body).toMatchObject({ status: 'pending' });

  expect((await oidc.approveDevice(started.body.user_code as string, { accountId: 'device-acct-hank' })).outcome).toBe('approved');
  const connected = await waitFor(async () => {
    const res = await session(httpB, id);
    return res.body.status === 'connected' ? res.body : false;
  }, 'the session to connect');
  expect(connected).toMatchObject({ account_id: 'device-acct-hank', version: expect.any(Number) });
  // Another interval or two: nobody polls a finished session (a second exchange of the spent code would revoke the grant).
  await sleep(INTERVAL_MS + 500);

  const polls = await devicePolls();
  const times = polls.map((p) => p.receivedAt);
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  // One poll per interval at most: the claim leases the session, the next poll is due an interval after the claim.
  expect(Math.min(...gaps)).toBeGreaterThanOrEqual(INTERVAL_MS - 100);
  expect(polls.length).toBe(pendingPolls.length + 1);
  const deviceCode = polls[0]!.form.device_code!;
  expect(polls.every((p) => p.form.device_code === deviceCode)).toBe(true);

  // Exactly one credential, the one the session names, and its token is alive at the provider.
  const { keys } = await dumpRedis(inspect, keyPrefix);
  expect(keys.filter((key) => key.includes(':cred:'))).toEqual([a.deps.keys.credential('dev-hank', 'oidc')]);
  const token = await request(httpB.url).get('/tokens/dev-hank/oidc').set('Authorization', bearer(DEVICE_APP_KEY));
  expect(token.body).toMatchObject({ version: connected.version, account_id: 'device-acct-hank' });
  const accessToken = token.body.access_token as string;
  expect(await oidc.active(accessToken)).toBe(true);

  for (const vault of [a, b]) {
    expect(secretsIn(vault.logs.text(), { deviceCode, accessToken, clientSecret: oidc.clients.basic.secret })).toEqual([]);
  }
});
