import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { decodeCredential, type OAuth2Credential } from '../../../src/credentials/credential';
import { Envelope } from '../../../src/crypto/envelope';
import { LocalKeyWrapper } from '../../../src/crypto/key-wrapper';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { ScriptedTokenServer, type ScriptedRequest, type ScriptedResponse } from '../../helpers/providers/scripted-token-server';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Provider quirks that change token handling, proven through the vault: each provider is
 * configured as `preset: <id>` with only its tokenUrl pointed at a local stand-in that answers the
 * way the real provider does, and each test checks what the caller sees, what reached the
 * provider and what the vault stored.
 */

const DAY = 24 * 3600;
const SECRET = 'client-secret-value-7f3a';

/**
 * GitHub's token endpoint as GitHub documents it: every answer (errors too, with HTTP 200) is
 * form-encoded unless the request's Accept header asks for JSON.
 */
class GitHubTokenEndpoint {
  private readonly queue: Record<string, string | number>[] = [];
  readonly requests: { headers: IncomingHttpHeaders; form: Record<string, string> }[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<GitHubTokenEndpoint> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const endpoint = new GitHubTokenEndpoint(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/login/oauth/access_token`);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        endpoint.requests.push({ headers: req.headers, form: Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) });
        const fields = endpoint.queue.shift() ?? { error: 'unscripted', error_description: 'no answer queued' };
        const json = (req.headers.accept ?? '').includes('application/json');
        const body = json ? JSON.stringify(fields) : new URLSearchParams(Object.entries(fields).map(([k, v]): [string, string] => [k, String(v)])).toString();
        res.writeHead(200, { 'content-type': json ? 'application/json; charset=utf-8' : 'application/x-www-form-urlencoded; charset=utf-8' });
        res.end(body);
      });
    });
    return endpoint;
  }

  answer(...fields: Record<string, string | number>[]): void {
    this.queue.push(...fields);
  }

  get pending(): number {
    return this.queue.length;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

let redis: RedisServer;
let inspect: Redis;
let provider: ScriptedTokenServer;
let github: GitHubTokenEndpoint;
let vault: TestVault;
let envelope: Envelope;

beforeAll(async () => {
  [redis, provider, github] = await Promise.all([RedisServer.start(), ScriptedTokenServer.start(), GitHubTokenEndpoint.start()]);
  inspect = redis.client();
  const entry = (preset: string, tokenUrl = provider.url) => ({ preset, clientId: `${preset}-client-id`, clientSecret: SECRET, tokenUrl });
  vault = await startVault({
    redis,
    clock: TestClock.realTime(),
    config: (standard) => {
      standard.providers = {
        github: entry('github', github.url),
        // The same preset at an endpoint that answers form-encoded whatever the request asks.
        'github-form': entry('github'),
        slack: entry('slack'),
        salesforce: entry('salesforce'),
        xero: entry('xero'),
        linkedin: entry('linkedin'),
        intuit: entry('intuit'),
        box: entry('box'),
        spotify: entry('spotify'),
        strava: entry('strava'),
        twitch: entry('twitch'),
      };
      return standard;
    },
  });
  envelope = new Envelope(new LocalKeyWrapper(vault.deps.keyring));
});

afterAll(async () => {
  await vault?.close();
  inspect?.disconnect();
  await Promise.all([provider?.stop(), github?.stop()]);
  await redis?.stop();
});

beforeEach(() => {
  provider.clearRequests();
  github.requests.length = 0;
});

afterEach(() => {
  // No scripted answer left over: the vault made exactly the provider calls the scenario expects.
  expect({ scripted: provider.pending, github: github.pending }).toEqual({ scripted: 0, github: 0 });
});

// ---- helpers ---------------------------------------------------------------------------------

const token = (kind: string) => `${kind}-${randomBytes(6).toString('hex')}`;

const put = (user: string, id: string, body: { access_token: string; refresh_token?: string; expires_in?: number }) =>
  request(vault.app).put(`/tokens/${user}/${id}`).set('Authorization', vault.auth(vault.keys.writer)).send({ type: 'oauth2', ...body });
const get = (user: string, id: string, minTtl = 60) =>
  request(vault.app).get(`/tokens/${user}/${id}?min_ttl=${minTtl}`).set('Authorization', vault.auth(vault.keys.reader));
const forceRefresh = (user: string, id: string) => request(vault.app).post(`/tokens/${user}/${id}/refresh`).set('Authorization', vault.auth(vault.keys.writer));

/** The credential as stored, opened with the vault's keyring. */
async function stored(user: string, id: string): Promise<{ state: string | undefined; credential: OAuth2Credential }> {
  const record = await vault.deps.store.get(user, id);
  if (!record) throw new Error(`no credential ${user}/${id}`);
  const credential = decodeCredential(await envelope.open(record.blob, { user, provider: id }));
  if (credential.type !== 'oauth2') throw new Error('not an oauth2 credential');
  return { state: (await inspect.hgetall(vault.deps.keys.credential(user, id))).state, credential };
}

async function dueScore(user: string, id: string): Promise<number | null> {
  const score = await inspect.zscore(vault.deps.keys.due(user), `${user}:${id}`);
  return score === null ? null : Number(score);
}

/** The client id and secret of a Basic header (RFC 6749 §2.3.1: each form-encoded). */
function basic(req: ScriptedRequest): { id: string; secret: string } {
  const header = req.headers.authorization ?? '';
  expect(header).toMatch(/^Basic /);
  const [id = '', secret = ''] = Buffer.from(header.slice(6), 'base64').toString('utf8').split(':');
  const decode = (value: string) => decodeURIComponent(value.replace(/\+/g, ' '));
  return { id: decode(id), secret: decode(secret) };
}

const json = (body: object): ScriptedResponse => ({ status: 200, body });

/** A credential whose access token has expired, so the next GET refreshes it. */
async function putExpired(user: string, id: string, refreshToken: string): Promise<void> {
  expect((await put(user, id, { access_token: token('at-old'), refresh_token: refreshToken, expires_in: 0 })).status).toBe(201);
}

// ---- GitHub ----------------------------------------------------------------------------------

describe('GitHub', () => {
  test('GitHub answers form-encoded unless asked for JSON: the vault sends Accept: application/json and reads the JSON answer', async () => {
    // The stand-in really does answer form-encoded to a request that does not ask for JSON.
    github.answer({ access_token: 'probe', token_type: 'bearer', scope: '' });
    const probe = await fetch(github.url, { method: 'POST', body: 'grant_type=refresh_token', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(probe.headers.get('content-type')).toMatch(/^application\/x-www-form-urlencoded/);
    expect(await probe.text()).toBe('access_token=probe&token_type=bearer&scope=');
    github.requests.length = 0;

    const rt = token('ghr');
    const fresh = token('ghu');
    const rotated = token('ghr');
    await putExpired('gh1', 'github', rt);
    // A GitHub App user token: 8 h, with a rotated refresh token that lives ~6 months.
    github.answer({ access_token: fresh, expires_in: 28800, refresh_token: rotated, refresh_token_expires_in: 15897600, scope: '', token_type: 'bearer' });
    const before = vault.clock.now();

    const answer = await get('gh1', 'github');

    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ access_token: fresh, token_type: 'bearer', type: 'oauth2' });
    expect(answer.body.expires_in).toBeGreaterThanOrEqual(28799);
    expect(github.requests).toHaveLength(1);
    expect(github.requests[0]!.headers.accept).toBe('application/json');
    expect(github.requests[0]!.form).toEqual({ grant_type: 'refresh_token', refresh_token: rt, client_id: 'github-client-id', client_secret: SECRET });
    const { credential } = await stored('gh1', 'github');
    expect(credential.refreshToken?.reveal()).toBe(rotated);
    expect(credential.refreshExpiresAt).toBeGreaterThanOrEqual(before + 15897600 * 1000);
    expect(credential.refreshExpiresAt).toBeLessThanOrEqual(vault.clock.now() + 15897600 * 1000);
  });

  test('GitHub form-encoded answer (every value a string, `expires_in` included) is read', async () => {
    const fresh = token('ghu');
    const rotated = token('ghr');
    await putExpired('gh2', 'github-form', token('ghr'));
    provider.respond({
      status: 200,
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: `access_token=${fresh}&expires_in=28800&refresh_token=${rotated}&refresh_token_expires_in=15897600&scope=&token_type=bearer`,
    });

    const answer = await get('gh2', 'github-form');

    expect(answer.status).toBe(200);
    expect(answer.body.access_token).toBe(fresh);
    expect(answer.body.expires_in).toBeGreaterThanOrEqual(28799);
    expect(answer.body.expires_in).toBeLessThanOrEqual(28800);
    expect((await stored('gh2', 'github-form')).credential.refreshToken?.reveal()).toBe(rotated);
  });

  test('GitHub HTTP 200 with error=bad_refresh_token → 409 reauth_required, and no provider call after that', async () => {
    await putExpired('gh3', 'github', token('ghr'));
    github.answer({ error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.', error_uri: 'https://docs.github.com' });

    const answer = await get('gh3', 'github');

    expect(answer.status).toBe(409);
    expect(answer.body.error.code).toBe('reauth_required');
    expect(github.requests).toHaveLength(1);
    expect((await stored('gh3', 'github')).state).toBe('reauth_required');
    expect((await get('gh3', 'github')).status).toBe(409);
    expect((await forceRefresh('gh3', 'github')).status).toBe(409);
    expect(github.requests).toHaveLength(1);
  });
});

// ---- Slack -----------------------------------------------------------------------------------

describe('Slack', () => {
  test('Slack HTTP 200 {"ok": false, "error": "invalid_refresh_token"} → 409 reauth_required', async () => {
    await putExpired('sl1', 'slack', token('xoxe-1'));
    provider.respond(json({ ok: false, error: 'invalid_refresh_token' }));

    const answer = await forceRefresh('sl1', 'slack');

    expect(answer.status).toBe(409);
    expect(answer.body.error.code).toBe('reauth_required');
    expect(provider.requests).toHaveLength(1);
    expect((await stored('sl1', 'slack')).state).toBe('reauth_required');
  });

  test('Slack token rotation answer ({"ok": true, …, "refresh_token": "xoxe-1-…"}) is read and its refresh token used next', async () => {
    const first = token('xoxe-1');
    const second = token('xoxe-1');
    const bot = token('xoxe.xoxb-1');
    await putExpired('sl2', 'slack', first);
    provider.respond(
      json({
        ok: true,
        app_id: 'A0KRD7HC3',
        authed_user: { id: 'U1234' },
        scope: 'chat:write,channels:read',
        token_type: 'bot',
        access_token: bot,
        bot_user_id: 'U0KRQLJ9H',
        refresh_token: second,
        expires_in: 43200,
        team: { id: 'T9TK3CUKW', name: 'Acme' },
        enterprise: null,
      }),
      json({ ok: true, token_type: 'bot', access_token: token('xoxe.xoxb-1'), refresh_token: token('xoxe-1'), expires_in: 43200, team: { id: 'T9TK3CUKW' } }),
    );

    const answer = await get('sl2', 'slack');
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ access_token: bot, token_type: 'bot', scope: 'chat:write,channels:read' });
    expect(answer.body.expires_in).toBeGreaterThanOrEqual(43199);
    expect((await stored('sl2', 'slack')).credential.refreshToken?.reveal()).toBe(second);

    expect((await forceRefresh('sl2', 'slack')).status).toBe(200);
    expect(provider.requests.map((r) => r.form.refresh_token)).toEqual([first, second]);
  });
});

// ---- no expires_in ---------------------------------------------------------------------------

test('Salesforce answers without expires_in: the token is served without an expiry and scheduled with the preset\'s defaultLifetimeSeconds (900 s)', async () => {
  const fresh = token('00Dx0000000BV7z!AR8AQ');
  const rt = token('5Aep861');
  await putExpired('sf1', 'salesforce', rt);
  provider.respond(
    json({
      access_token: fresh,
      signature: 'SSSbLO/gBhmmyNUvN18ODBDFYHzakxOMgqYtu+hDPsc=',
      scope: 'refresh_token api',
      instance_url: 'https://acme.my.salesforce.com',
      id: 'https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P',
      token_type: 'Bearer',
      issued_at: '1278448384422',
    }),
  );
  const before = vault.clock.now();

  const answer = await get('sf1', 'salesforce');
  const after = vault.clock.now();

  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ access_token: fresh, token_type: 'Bearer', scope: 'refresh_token api', expires_at: null, expires_in: null });
  expect(provider.requests[0]!.form).toEqual({ grant_type: 'refresh_token', refresh_token: rt, client_id: 'salesforce-client-id', client_secret: SECRET });
  // 900 s of assumed life: the skew (300 s) and jitter would put it at ≤ 600 s, so the 80% floor wins.
  const due = await dueScore('sf1', 'salesforce');
  expect(due).toBeGreaterThanOrEqual(before + 720_000);
  expect(due).toBeLessThanOrEqual(after + 720_000);
  const { credential } = await stored('sf1', 'salesforce');
  expect({ refreshToken: credential.refreshToken?.reveal(), expiresAt: credential.expiresAt }).toEqual({ refreshToken: rt, expiresAt: null });

  // A token with no known end is served as it is, never refreshed on demand.
  expect((await get('sf1', 'salesforce', 86_400)).body.access_token).toBe(fresh);
  expect(provider.requests).toHaveLength(1);
});

// ---- rotation --------------------------------------------------------------------------------

test('Xero rotates refresh tokens: each refresh sends the newest one (client_secret_basic), the old one is never sent again', async () => {
  const [rt1, rt2, rt3] = [token('xero-rt'), token('xero-rt'), token('xero-rt')];
  await put('xe1', 'xero', { access_token: token('xero-at'), refresh_token: rt1, expires_in: 1800 });
  const answer = (rt: string) => json({ id_token: token('idt'), access_token: token('xero-at'), expires_in: 1800, token_type: 'Bearer', refresh_token: rt, scope: 'offline_access accounting.transactions' });
  provider.respond(answer(rt2), answer(rt3));

  expect((await forceRefresh('xe1', 'xero')).status).toBe(200);
  expect((await stored('xe1', 'xero')).credential.refreshToken?.reveal()).toBe(rt2);
  expect((await forceRefresh('xe1', 'xero')).status).toBe(200);

  expect(provider.requests.map((r) => r.form)).toEqual([
    { grant_type: 'refresh_token', refresh_token: rt1 },
    { grant_type: 'refresh_token', refresh_token: rt2 },
  ]);
  for (const req of provider.requests) expect(basic(req)).toEqual({ id: 'xero-client-id', secret: SECRET });
  const { credential } = await stored('xe1', 'xero');
  expect(credential.refreshToken?.reveal()).toBe(rt3);
  // A rotated Xero refresh token lives 60 days unused (the preset's refreshTokenLifetimeSeconds).
  expect(credential.refreshExpiresAt! - vault.clock.now()).toBeGreaterThan((60 * DAY - 60) * 1000);
});

// ---- refresh tokens that expire --------------------------------------------------------------

test('LinkedIn refresh_token_expires_in: past it the vault answers 409 reauth_required without calling LinkedIn', async () => {
  const rt = token('li-rt');
  const refreshLeft = 31_000_000; // the answer says how long the refresh token has left, not a fresh year
  await putExpired('li1', 'linkedin', rt);
  provider.respond(json({ access_token: token('li-at'), expires_in: 60 * DAY, refresh_token: rt, refresh_token_expires_in: refreshLeft, scope: 'r_liteprofile' }));

  const refreshed = await get('li1', 'linkedin');
  expect(refreshed.status).toBe(200);
  expect(provider.requests).toHaveLength(1);
  expect(provider.requests[0]!.form).toMatchObject({ client_id: 'linkedin-client-id', client_secret: SECRET, refresh_token: rt });
  expect((await stored('li1', 'linkedin')).credential.refreshExpiresAt! - vault.clock.now()).toBeGreaterThan((refreshLeft - 60) * 1000);

  vault.clock.advance((refreshLeft + 1) * 1000);
  const dead = await get('li1', 'linkedin');

  expect(dead.status).toBe(409);
  expect(dead.body.error.code).toBe('reauth_required');
  expect(provider.requests).toHaveLength(1);
  expect((await stored('li1', 'linkedin')).state).toBe('reauth_required');
});

test('Intuit x_refresh_token_expires_in (and a changed refresh token): past it 409 reauth_required without calling Intuit', async () => {
  const [rt1, rt2] = [token('AB11-rt'), token('AB11-rt')];
  await putExpired('qb1', 'intuit', rt1);
  provider.respond(json({ token_type: 'bearer', access_token: token('qb-at'), expires_in: 3600, refresh_token: rt2, x_refresh_token_expires_in: 8_726_400 }));

  expect((await get('qb1', 'intuit')).status).toBe(200);
  expect(basic(provider.requests[0]!)).toEqual({ id: 'intuit-client-id', secret: SECRET });
  expect(provider.requests[0]!.form).toEqual({ grant_type: 'refresh_token', refresh_token: rt1 });
  const { credential } = await stored('qb1', 'intuit');
  expect(credential.refreshToken?.reveal()).toBe(rt2);
  expect(credential.refreshExpiresAt! - vault.clock.now()).toBeGreaterThan((8_726_400 - 60) * 1000);

  vault.clock.advance((8_726_400 + 1) * 1000);
  const dead = await get('qb1', 'intuit');

  expect(dead.status).toBe(409);
  expect(dead.body.error.code).toBe('reauth_required');
  expect(provider.requests).toHaveLength(1);
});

test('Box refreshTokenLifetimeSeconds (60 days, single-use refresh tokens): used within 60 days it refreshes, unused for 60 days 409 without calling Box', async () => {
  const [rt1, rt2, rt3] = [token('box-rt'), token('box-rt'), token('box-rt')];
  await putExpired('bx1', 'box', rt1);
  const answer = (rt: string) => json({ access_token: token('box-at'), expires_in: 3600, restricted_to: [], refresh_token: rt, token_type: 'bearer' });
  provider.respond(answer(rt2), answer(rt3));

  expect((await get('bx1', 'box')).status).toBe(200);
  vault.clock.advance((59 * DAY) * 1000);
  expect((await get('bx1', 'box')).status).toBe(200);
  expect(provider.requests.map((r) => r.form.refresh_token)).toEqual([rt1, rt2]);
  expect(provider.requests[0]!.form).toMatchObject({ client_id: 'box-client-id', client_secret: SECRET });

  vault.clock.advance((60 * DAY + 1) * 1000);
  const dead = await get('bx1', 'box');

  expect(dead.status).toBe(409);
  expect(dead.body.error.code).toBe('reauth_required');
  expect(provider.requests).toHaveLength(2);
  expect((await stored('bx1', 'box')).state).toBe('reauth_required');
});

// ---- refresh without a new refresh token -----------------------------------------------------

test('Spotify refresh without a new refresh token keeps the old one; a later answer with one replaces it', async () => {
  const [rt1, rt2] = [token('sp-rt'), token('sp-rt')];
  await put('sp1', 'spotify', { access_token: token('sp-at'), refresh_token: rt1, expires_in: 3600 });
  provider.respond(
    json({ access_token: token('sp-at'), token_type: 'Bearer', scope: 'user-read-private user-read-email', expires_in: 3600 }),
    json({ access_token: token('sp-at'), token_type: 'Bearer', scope: 'user-read-private user-read-email', expires_in: 3600, refresh_token: rt2 }),
    json({ access_token: token('sp-at'), token_type: 'Bearer', scope: 'user-read-private user-read-email', expires_in: 3600 }),
  );

  expect((await forceRefresh('sp1', 'spotify')).status).toBe(200);
  expect((await stored('sp1', 'spotify')).credential.refreshToken?.reveal()).toBe(rt1);
  expect((await forceRefresh('sp1', 'spotify')).status).toBe(200);
  expect((await forceRefresh('sp1', 'spotify')).status).toBe(200);

  expect(provider.requests.map((r) => r.form.refresh_token)).toEqual([rt1, rt1, rt2]);
  for (const req of provider.requests) expect(basic(req)).toEqual({ id: 'spotify-client-id', secret: SECRET });
  expect((await stored('sp1', 'spotify')).credential.refreshToken?.reveal()).toBe(rt2);
});

// ---- Strava ----------------------------------------------------------------------------------

test('Strava answers expires_at beside expires_in: the vault reads expires_in, serves the token and keeps the new refresh token', async () => {
  const [rt1, rt2] = [token('st-rt'), token('st-rt')];
  const fresh = token('st-at');
  await putExpired('st1', 'strava', rt1);
  const nowSeconds = Math.floor(vault.clock.now() / 1000);
  provider.respond(json({ token_type: 'Bearer', access_token: fresh, expires_at: nowSeconds + 21600, expires_in: 21600, refresh_token: rt2 }));
  const before = vault.clock.now();

  const answer = await get('st1', 'strava');

  expect(answer.status).toBe(200);
  expect(answer.body.access_token).toBe(fresh);
  expect(answer.body.expires_in).toBeGreaterThanOrEqual(21599);
  const expiresAt = Date.parse(answer.body.expires_at as string);
  expect(expiresAt).toBeGreaterThanOrEqual(before + 21600 * 1000);
  expect(expiresAt).toBeLessThanOrEqual(vault.clock.now() + 21600 * 1000);
  expect(provider.requests[0]!.form).toEqual({ grant_type: 'refresh_token', refresh_token: rt1, client_id: 'strava-client-id', client_secret: SECRET });
  expect((await stored('st1', 'strava')).credential.refreshToken?.reveal()).toBe(rt2);
});

// ---- Twitch ----------------------------------------------------------------------------------

describe('Twitch', () => {
  test('Twitch answers scope as a JSON array: the caller sees it space-separated', async () => {
    const rt = token('tw-rt');
    await putExpired('tw1', 'twitch', token('tw-rt'));
    provider.respond(json({ access_token: token('tw-at'), expires_in: 14124, refresh_token: rt, scope: ['channel:moderate', 'chat:edit', 'chat:read'], token_type: 'bearer' }));

    const answer = await get('tw1', 'twitch');

    expect(answer.status).toBe(200);
    expect(answer.body.scope).toBe('channel:moderate chat:edit chat:read');
    expect((await stored('tw1', 'twitch')).credential).toMatchObject({ scope: 'channel:moderate chat:edit chat:read' });
    expect((await stored('tw1', 'twitch')).credential.refreshToken?.reveal()).toBe(rt);
  });

  test('Twitch 400 {"message": "Invalid refresh token"} (no RFC error code) → 409 reauth_required', async () => {
    await putExpired('tw2', 'twitch', token('tw-rt'));
    provider.respond({ status: 400, body: { error: 'Bad Request', status: 400, message: 'Invalid refresh token' } });

    const answer = await get('tw2', 'twitch');

    expect(answer.status).toBe(409);
    expect(answer.body.error.code).toBe('reauth_required');
    expect((await stored('tw2', 'twitch')).state).toBe('reauth_required');
  });
});
