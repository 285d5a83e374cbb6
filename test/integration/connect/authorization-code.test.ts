import { createHash, randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { callerKeys, startVault, TEST_PROVIDERS, TestClock, type TestVault } from '../../helpers/app';
import { Browser } from '../../helpers/browser';
import {
  closeServer,
  connectAuth,
  connectCallers,
  listen,
  portOf,
  ProviderTraffic,
  walkFlow,
  WhoAmIServer,
} from '../../helpers/connect';
import { dumpRedis, secretsIn } from '../../helpers/checks';
import { OidcServer } from '../../helpers/providers/oidc';
import { RedisServer } from '../../helpers/redis-server';

/**
 * The authorization-code connect flow (DESIGN §4) end to end: a product backend starts it
 * (POST /connect/:provider), a browser opens the vault's start URL, logs in at a real
 * oidc-provider and comes back through GET /callback/:provider to return_to. The vault listens
 * on its publicUrl port, as in production; return_to is http://127.0.0.1:9/app, where nothing
 * listens: the browser stops at that redirect and the test reads the outcome from it.
 */

const RETURN_ORIGIN = 'http://127.0.0.1:9';
const RETURN_TO = `${RETURN_ORIGIN}/app/done`;
const ALLOWED_RETURN_TO = [`${RETURN_ORIGIN}/app`, 'https://app.example.com/integrations'];
/** Providers whose callback URLs are registered at the OAuth server. */
const FLOW_PROVIDERS = ['oidc', 'oidc-post', 'plain', 'plain-me', 'google', 'slack', 'wrong-secret'];
const TEN_MINUTES = 10 * 60_000;

let redis: RedisServer;
let oidc: OidcServer;
let whoami: WhoAmIServer;
let vault: TestVault;
let server: Server;
let publicUrl: string;
let client: Redis;
const keys = callerKeys();
const auth = connectAuth(keys);
const traffic = new ProviderTraffic();

function vaultConfig(standard: Record<string, unknown>): Record<string, unknown> {
  const user = { type: 'oauth2', authorizationUrl: oidc.authorizationUrl, tokenUrl: oidc.tokenUrl };
  const basic = { ...user, clientId: oidc.clients.basic.id, clientSecret: oidc.clients.basic.secret };
  return {
    ...standard,
    callers: connectCallers(keys),
    server: { publicUrl },
    connect: { returnTo: ALLOWED_RETURN_TO },
    providers: {
      // No authorizationUrl: no connect flow.
      github: TEST_PROVIDERS.github,
      oidc: { ...basic, scopes: ['openid', 'offline_access'], authorizationParams: { prompt: 'consent' } },
      'oidc-post': {
        ...user,
        clientId: oidc.clients.post.id,
        clientSecret: oidc.clients.post.secret,
        clientAuth: 'client_secret_post',
        scopes: ['openid', 'offline_access'],
        authorizationParams: { prompt: 'consent' },
      },
      // Plain OAuth 2.0 (no openid, so no ID token): the account comes from a "who am I" endpoint.
      plain: { ...basic, scopes: ['offline_access'], authorizationParams: { prompt: 'consent' }, userinfoUrl: whoami.url },
      // oidc-provider's own /me refuses access tokens without the openid scope.
      'plain-me': { ...basic, scopes: ['offline_access'], authorizationParams: { prompt: 'consent' }, userinfoUrl: oidc.userinfoUrl },
      google: {
        preset: 'google',
        clientId: oidc.clients.post.id,
        clientSecret: oidc.clients.post.secret,
        authorizationUrl: oidc.authorizationUrl,
        tokenUrl: oidc.tokenUrl,
        userinfoUrl: oidc.userinfoUrl,
      },
      slack: {
        preset: 'slack',
        clientId: 'slack-client',
        clientSecret: 'slack-client-secret',
        authorizationUrl: oidc.authorizationUrl,
        tokenUrl: oidc.tokenUrl,
        scopes: ['chat:write', 'channels:read'],
      },
      'wrong-secret': { ...basic, clientSecret: 'not-the-basic-secret', scopes: ['openid'] },
    },
  };
}

beforeAll(async () => {
  // Listening first makes publicUrl known (the OAuth server must register its callbacks) before the vault exists.
  server = await listen((req, res) => vault.app(req, res));
  publicUrl = `http://127.0.0.1:${portOf(server)}`;
  [redis, oidc] = await Promise.all([
    RedisServer.start(),
    OidcServer.start({ redirectUris: FLOW_PROVIDERS.map((provider) => `${publicUrl}/callback/${provider}`) }),
  ]);
  whoami = await WhoAmIServer.start({ url: oidc.introspectionUrl, clientId: oidc.clients.basic.id, clientSecret: oidc.clients.basic.secret });
  vault = await startVault({ redis, keys, clock: TestClock.realTime(), logLevel: 'trace', deps: { fetch: traffic.fetch }, config: vaultConfig });
  client = redis.client();
});

afterAll(async () => {
  client?.disconnect();
  await closeServer(server);
  await vault?.close();
  await Promise.all([oidc?.stop(), whoami?.stop(), redis?.stop()]);
});

beforeEach(async () => {
  await oidc.reset();
});

interface Started {
  id: string;
  flow: string;
  url: string;
  expires_at: string;
}

/** POST /connect/:provider as the portal, for alice, back to RETURN_TO; expects 201. */
async function start(provider: string, body: Record<string, unknown> = {}): Promise<Started> {
  const res = await request(vault.app)
    .post(`/connect/${provider}`)
    .set('Authorization', auth.portal)
    .send({ user: 'alice', return_to: RETURN_TO, ...body });
  expect(res.status).toBe(201);
  return res.body as Started;
}

const getToken = (user: string, provider: string) => request(vault.app).get(`/tokens/${user}/${provider}`).set('Authorization', auth.backend);
const getSession = (id: string, as = auth.portal) => request(vault.app).get(`/connect/sessions/${id}`).set('Authorization', as);
const base64url = (bytes: Buffer) => bytes.toString('base64url');

/** The code exchanges (grant_type=authorization_code) the OAuth server received since its last reset. */
async function codeExchanges() {
  return (await oidc.requests()).filter((r) => r.path === '/token' && r.form.grant_type === 'authorization_code');
}

function connectedUrl(provider: string, id: string): string {
  return `${RETURN_TO}?status=connected&provider=${provider}&session=${id}`;
}

function errorUrl(provider: string, id: string, error: string): string {
  return `${RETURN_TO}?status=error&error=${error}&provider=${provider}&session=${id}`;
}

/** The binding cookie /connect/start set in `browser`. */
function bindingCookie(browser: Browser, id: string) {
  return browser.cookies(`${publicUrl}/callback/x`).find((cookie) => cookie.name === `tv_connect_${id}`);
}

describe('a user connects', () => {
  test('with oidc-provider (client_secret_basic): back on return_to connected, the token served with the ID token subject as account_id, the refresh token stored and usable', async () => {
    await oidc.login({ accountId: 'acct-alice' });
    const started = await start('oidc');
    expect(started).toEqual({ id: expect.stringMatching(/^cs_[A-Za-z0-9_-]{22}$/), flow: 'authorization_code', url: `${publicUrl}/connect/start/${started.id}`, expires_at: expect.any(String) });
    expect(Date.parse(started.expires_at) - vault.clock.now()).toBeGreaterThan(TEN_MINUTES - 5_000);
    expect(Date.parse(started.expires_at) - vault.clock.now()).toBeLessThanOrEqual(TEN_MINUTES);

    const flow = await walkFlow(started.url, RETURN_ORIGIN);
    expect(flow.end.url.href).toBe(connectedUrl('oidc', started.id));

    // The authorization request the browser carried to the provider.
    const authorization = flow.providerUrl!;
    expect(`${authorization.origin}${authorization.pathname}`).toBe(oidc.authorizationUrl);
    const params = Object.fromEntries(authorization.searchParams);
    expect(params).toEqual({
      response_type: 'code',
      client_id: oidc.clients.basic.id,
      redirect_uri: `${publicUrl}/callback/oidc`,
      scope: 'openid offline_access',
      prompt: 'consent',
      state: expect.stringMatching(new RegExp(`^${started.id}\\.[A-Za-z0-9_-]{43}$`)),
      nonce: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      code_challenge_method: 'S256',
    });

    // The code exchange: the code from the callback, the publicUrl-based redirect_uri, the PKCE verifier, Basic client auth.
    const [exchange, ...more] = await codeExchanges();
    expect(more).toEqual([]);
    expect(exchange!.form).toEqual({
      grant_type: 'authorization_code',
      code: flow.callbackUrl!.searchParams.get('code'),
      redirect_uri: `${publicUrl}/callback/oidc`,
      code_verifier: expect.stringMatching(/^[A-Za-z0-9_-]{43,128}$/),
    });
    expect(base64url(createHash('sha256').update(exchange!.form.code_verifier!).digest())).toBe(params.code_challenge);
    expect(exchange!.headers.authorization).toBe(`Basic ${Buffer.from('basic-client:basic-secret').toString('base64')}`);

    // The token: what the provider answered, for the account that logged in.
    const answer = ProviderTraffic.fields(traffic.to('/token').at(-1)!.answer);
    const token = await getToken('alice', 'oidc');
    expect(token.status).toBe(200);
    expect(token.body).toEqual({
      user: 'alice',
      provider: 'oidc',
      type: 'oauth2',
      access_token: answer.access_token,
      token_type: 'Bearer',
      expires_at: expect.any(String),
      expires_in: expect.any(Number),
      scope: 'openid offline_access',
      account_id: 'acct-alice',
      version: expect.any(Number),
    });
    expect(await oidc.active(answer.access_token!)).toBe(true);

    const session = await getSession(started.id);
    expect(session.status).toBe(200);
    expect(session.body).toEqual({
      id: started.id,
      provider: 'oidc',
      user: 'alice',
      flow: 'authorization_code',
      status: 'connected',
      expires_at: started.expires_at,
      account_id: 'acct-alice',
      version: token.body.version,
    });
    // The binding cookie is gone from the browser.
    expect(bindingCookie(flow.browser, started.id)).toBeUndefined();

    // The stored refresh token works: a forced refresh presents it and gets a rotated one.
    const refreshed = await request(vault.app).post('/tokens/alice/oidc/refresh').set('Authorization', auth.backend);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body).toMatchObject({ user: 'alice', provider: 'oidc', state: 'active', account_id: 'acct-alice' });
    expect(refreshed.body.version).toBeGreaterThan(token.body.version);
    const refreshes = (await oidc.requests()).filter((r) => r.path === '/token' && r.form.grant_type === 'refresh_token');
    expect(refreshes.map((r) => r.form.refresh_token)).toEqual([answer.refresh_token]);
    expect((await oidc.calls()).refresh).toMatchObject({ total: 1, success: 1 });
    const after = await getToken('alice', 'oidc');
    expect(after.body.access_token).not.toBe(answer.access_token);
    expect(after.body.account_id).toBe('acct-alice');
  });

  test('with a client_secret_post client: the client credentials travel in the form, not in a Basic header', async () => {
    await oidc.login({ accountId: 'acct-bob' });
    const started = await start('oidc-post', { user: 'bob' });
    const flow = await walkFlow(started.url, RETURN_ORIGIN);
    expect(flow.end.url.href).toBe(connectedUrl('oidc-post', started.id));
    expect(flow.providerUrl!.searchParams.get('code_challenge_method')).toBe('S256');
    expect(flow.providerUrl!.searchParams.get('client_id')).toBe('post-client');

    const [exchange] = await codeExchanges();
    expect(exchange!.headers.authorization).toBeUndefined();
    expect(exchange!.form).toEqual({
      grant_type: 'authorization_code',
      code: flow.callbackUrl!.searchParams.get('code'),
      redirect_uri: `${publicUrl}/callback/oidc-post`,
      code_verifier: expect.any(String),
      client_id: 'post-client',
      client_secret: 'post-secret',
    });
    const token = await getToken('bob', 'oidc-post');
    expect(token.status).toBe(200);
    expect(token.body.account_id).toBe('acct-bob');
    expect((await request(vault.app).post('/tokens/bob/oidc-post/refresh').set('Authorization', auth.backend)).status).toBe(200);
  });

  test('without openid (no ID token): the account id comes from the userinfo endpoint, asked with the new access token', async () => {
    await oidc.login({ accountId: 'acct-carol' });
    const started = await start('plain', { user: 'carol' });
    const flow = await walkFlow(started.url, RETURN_ORIGIN);
    expect(flow.end.url.href).toBe(connectedUrl('plain', started.id));
    expect(flow.providerUrl!.searchParams.get('scope')).toBe('offline_access');
    expect(flow.providerUrl!.searchParams.has('nonce')).toBe(false);

    const answer = ProviderTraffic.fields(traffic.to('/token').at(-1)!.answer);
    expect(answer.id_token).toBeUndefined();
    expect(whoami.tokens.at(-1)).toBe(answer.access_token);
    const token = await getToken('carol', 'plain');
    expect(token.body).toMatchObject({ access_token: answer.access_token, account_id: 'acct-carol' });
    expect((await getSession(started.id)).body).toMatchObject({ status: 'connected', account_id: 'acct-carol' });
  });

  test('without openid, against a userinfo endpoint that refuses the token (oidc-provider /me wants openid): connected, with no account id', async () => {
    await oidc.login({ accountId: 'acct-dave' });
    const started = await start('plain-me', { user: 'dave' });
    const flow = await walkFlow(started.url, RETURN_ORIGIN);
    expect(flow.end.url.href).toBe(connectedUrl('plain-me', started.id));
    const me = traffic.to(new URL(oidc.userinfoUrl).pathname).at(-1)!;
    expect(me.status).toBe(403);
    const token = await getToken('dave', 'plain-me');
    expect(token.status).toBe(200);
    expect(token.body.account_id).toBeUndefined();
    const session = await getSession(started.id);
    expect(session.body.status).toBe('connected');
    expect(session.body.account_id).toBeUndefined();
  });

  test('preset google (URLs pointed at the local server): the authorization URL asks for offline access with consent, and the flow connects', async () => {
    await oidc.login({ accountId: 'acct-erin' });
    const started = await start('google', { user: 'erin' });
    const flow = await walkFlow(started.url, RETURN_ORIGIN);
    expect(flow.end.url.href).toBe(connectedUrl('google', started.id));
    const params = flow.providerUrl!.searchParams;
    expect(params.get('access_type')).toBe('offline');
    expect(params.get('prompt')).toBe('consent');
    expect(params.get('scope')).toBe('openid email');
    expect(params.get('code_challenge_method')).toBe('S256');
    // The preset's client authentication: client_secret_post.
    const [exchange] = await codeExchanges();
    expect(exchange!.form.client_secret).toBe('post-secret');
    expect((await getToken('erin', 'google')).body.account_id).toBe('acct-erin');
  });

  test('preset slack: scopes are joined with commas; scopes in the POST body replace the configured ones', async () => {
    const toProvider = (url: URL) => url.origin === new URL(oidc.authorizationUrl).origin;
    const configured = await start('slack');
    const first = await new Browser().follow(configured.url, { until: toProvider });
    expect(first.status).toBe(302);
    expect(first.url.searchParams.get('scope')).toBe('chat:write,channels:read');
    expect(first.url.searchParams.get('client_id')).toBe('slack-client');
    expect(first.url.searchParams.get('redirect_uri')).toBe(`${publicUrl}/callback/slack`);

    const overridden = await start('slack', { scopes: ['users:read', 'team:read'] });
    const second = await new Browser().follow(overridden.url, { until: toProvider });
    expect(second.url.searchParams.get('scope')).toBe('users:read,team:read');

    // The same override on an OpenID provider: without openid, no nonce is asked for.
    const plainOidc = await start('oidc', { scopes: ['offline_access'] });
    const third = await new Browser().follow(plainOidc.url, { until: toProvider });
    expect(third.url.searchParams.get('scope')).toBe('offline_access');
    expect(third.url.searchParams.has('nonce')).toBe(false);
  });
});

describe('a flow that does not connect', () => {
  test('the user denies at the provider: return_to gets error=access_denied, nothing is stored, the session says error', async () => {
    await oidc.login({ deny: true });
    const started = await start('oidc', { user: 'frank' });
    const flow = await walkFlow(started.url, RETURN_ORIGIN);
    expect(flow.callbackUrl!.searchParams.get('error')).toBe('access_denied');
    expect(flow.end.url.href).toBe(errorUrl('oidc', started.id, 'access_denied'));
    expect(await codeExchanges()).toEqual([]);
    expect((await getToken('frank', 'oidc')).status).toBe(404);
    expect((await getSession(started.id)).body).toMatchObject({ status: 'error', error: 'access_denied' });
    expect((await getSession(started.id)).body.version).toBeUndefined();
  });

  test.each([
    ['the token endpoint answers 503', 'provider_unavailable', { mode: 'status', status: 503, retryAfter: 1 } as const],
    ['the token endpoint refuses the code with invalid_grant', 'invalid_grant', { mode: 'status', status: 400, body: { error: 'invalid_grant', error_description: 'code expired' } } as const],
    ['the token endpoint answers an error the vault cannot act on', 'provider_error', { mode: 'status', status: 400, body: { error: 'unsupported_grant_type' } } as const],
  ])('%s: return_to gets error=%s and nothing is stored', async (_scenario, error, mode) => {
    await oidc.mode({ ...mode, grantType: 'authorization_code', times: 1 });
    await oidc.login({ accountId: 'acct-grace' });
    const started = await start('oidc', { user: 'grace' });
    const flow = await walkFlow(started.url, RETURN_ORIGIN);
    expect(flow.end.url.href).toBe(errorUrl('oidc', started.id, error));
    expect(await codeExchanges()).toHaveLength(1);
    expect((await getToken('grace', 'oidc')).status).toBe(404);
    expect((await getSession(started.id)).body).toMatchObject({ status: 'error', error });
  });

  test('an authorization request whose nonce was changed on the way: the ID token does not match the flow, error=invalid_id_token, nothing stored', async () => {
    await oidc.login({ accountId: 'acct-nonce' });
    const started = await start('oidc', { user: 'nonce-user' });
    const browser = new Browser();
    const opened = await browser.get(started.url);
    const altered = new URL(opened.headers.get('location')!);
    altered.searchParams.set('nonce', 'a-nonce-of-another-flow');
    const end = await browser.follow(altered, { until: (url) => url.origin === RETURN_ORIGIN });
    expect(end.url.href).toBe(errorUrl('oidc', started.id, 'invalid_id_token'));
    expect(await codeExchanges()).toHaveLength(1);
    expect((await getToken('nonce-user', 'oidc')).status).toBe(404);
    expect((await getSession(started.id)).body).toMatchObject({ status: 'error', error: 'invalid_id_token' });
  });

  test('an authorization request whose code_challenge was swapped on the way: the provider refuses the vault\'s verifier, error=invalid_grant', async () => {
    await oidc.login({ accountId: 'acct-pkce' });
    const started = await start('oidc', { user: 'pkce-user' });
    const browser = new Browser();
    const opened = await browser.get(started.url);
    const altered = new URL(opened.headers.get('location')!);
    altered.searchParams.set('code_challenge', base64url(createHash('sha256').update('the attacker verifier').digest()));
    const end = await browser.follow(altered, { until: (url) => url.origin === RETURN_ORIGIN });
    expect(end.url.href).toBe(errorUrl('oidc', started.id, 'invalid_grant'));
    expect((await getToken('pkce-user', 'oidc')).status).toBe(404);
  });

  test('the provider refuses the client (wrong client secret): error=provider_error, nothing stored', async () => {
    const started = await start('wrong-secret', { user: 'heidi' });
    const flow = await walkFlow(started.url, RETURN_ORIGIN);
    expect(flow.end.url.href).toBe(errorUrl('wrong-secret', started.id, 'provider_error'));
    expect((await getToken('heidi', 'wrong-secret')).status).toBe(404);
  });

  test('the provider sends back an error code that is no OAuth error code: it reaches return_to as provider_error', async () => {
    const started = await start('oidc', { user: 'ivan' });
    const browser = new Browser();
    const toCallback = await browser.follow(started.url, { until: (url) => url.pathname === '/callback/oidc' });
    const forged = new URL(toCallback.url);
    forged.searchParams.delete('code');
    forged.searchParams.set('error', '<script>alert(1)</script>');
    const end = await browser.follow(forged, { until: (url) => url.origin === RETURN_ORIGIN });
    expect(end.url.href).toBe(errorUrl('oidc', started.id, 'provider_error'));
    expect(await codeExchanges()).toEqual([]);
  });
});

describe('security of the flow', () => {
  test.each([
    ['another origin', 'https://evil.test/app/done'],
    ['a host that only starts with the allowed one', 'https://app.example.com.evil.test/integrations/done'],
    ['a sibling path', `${RETURN_ORIGIN}/app-evil`],
    ['a sibling path of the other entry', 'https://app.example.com/integrations-evil/x'],
    ['userinfo in the URL', 'http://x@127.0.0.1:9/app/done'],
    ['another port', 'http://127.0.0.1:10/app/done'],
    ['another scheme', 'https://127.0.0.1:9/app/done'],
    ['a dot-segment climbing out of the prefix', `${RETURN_ORIGIN}/app/../admin`],
    ['a javascript: URL', 'javascript:alert(1)//127.0.0.1:9/app'],
    ['a relative URL', '/app/done'],
  ])('return_to on %s is refused at POST with 400, and no flow is created', async (_scenario, returnTo) => {
    const before = (await client.keys('*{connect}:session:*')).length;
    const res = await request(vault.app).post('/connect/oidc').set('Authorization', auth.portal).send({ user: 'alice', return_to: returnTo });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_request', details: [{ path: 'body.return_to', message: expect.any(String) }] });
    expect((await client.keys('*{connect}:session:*')).length).toBe(before);
  });

  test('return_to exactly an allowed entry, or under it, is accepted; a missing return_to is refused', async () => {
    for (const returnTo of [`${RETURN_ORIGIN}/app`, `${RETURN_ORIGIN}/app/`, 'https://app.example.com/integrations/github?tab=1']) {
      const res = await request(vault.app).post('/connect/oidc').set('Authorization', auth.portal).send({ user: 'alice', return_to: returnTo });
      expect(res.status).toBe(201);
    }
    const missing = await request(vault.app).post('/connect/oidc').set('Authorization', auth.portal).send({ user: 'alice' });
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('invalid_request');
  });

  test('a vault without connect.returnTo refuses every browser flow with 400', async () => {
    const bare = await startVault({
      redis,
      keys,
      keyringJson: vault.keyringJson,
      config: (standard) => ({ ...vaultConfig(standard), connect: undefined }),
    });
    try {
      const res = await request(bare.app).post('/connect/oidc').set('Authorization', auth.portal).send({ user: 'alice', return_to: RETURN_TO });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_request');
      expect(res.body.error.message).toContain('connect.returnTo');
    } finally {
      await bare.close();
    }
  });

  test('a callback with a tampered state, an unknown session id, no state, or the state of another provider is a 400 page, and does not burn the flow', async () => {
    await oidc.login({ accountId: 'acct-judy' });
    const started = await start('oidc', { user: 'judy' });
    const browser = new Browser();
    const atCallback = await browser.follow(started.url, { until: (url) => url.pathname === '/callback/oidc' });
    const callback = atCallback.url;
    const state = callback.searchParams.get('state')!;
    const [id, secret] = state.split('.') as [string, string];
    const variants = [
      { path: '/callback/oidc', state: `${id}.${secret.slice(0, -2)}${secret.endsWith('AA') ? 'BB' : 'AA'}` },
      { path: '/callback/oidc', state: `cs_${randomBytes(16).toString('base64url')}.${secret}` },
      { path: '/callback/oidc', state: id },
      { path: '/callback/oidc', state: '' },
      { path: '/callback/google', state },
    ];
    for (const variant of variants) {
      const forged = new URL(variant.path, publicUrl);
      forged.searchParams.set('code', callback.searchParams.get('code')!);
      if (variant.state) forged.searchParams.set('state', variant.state);
      const answer = await browser.get(forged);
      expect({ variant, status: answer.status }).toEqual({ variant, status: 400 });
      expect(JSON.parse(answer.body)).toEqual({ error: { code: 'invalid_request', message: expect.any(String) } });
    }
    expect(await codeExchanges()).toEqual([]);
    // The genuine callback still finishes the flow.
    const end = await browser.follow(callback, { until: (url) => url.origin === RETURN_ORIGIN });
    expect(end.url.href).toBe(connectedUrl('oidc', started.id));
  });

  test('a callback from a browser without the binding cookie is a 400 page (no login CSRF); the browser that opened the link still finishes', async () => {
    await oidc.login({ accountId: 'acct-attacker' });
    const started = await start('oidc', { user: 'kate' });
    const owner = new Browser();
    const opened = await owner.get(started.url);
    expect(opened.status).toBe(302);
    const providerUrl = opened.headers.get('location')!;

    // Another browser gets the provider URL (with the state) but never opened the start link.
    const stranger = await walkFlow(providerUrl, RETURN_ORIGIN, new Browser());
    expect(stranger.callbackUrl).toBeDefined();
    expect(stranger.end.url.href).toBe(stranger.callbackUrl!.href);
    expect(stranger.end.status).toBe(400);
    expect(JSON.parse(stranger.end.body).error.code).toBe('invalid_request');
    expect(await codeExchanges()).toEqual([]);
    expect((await getSession(started.id)).body.status).toBe('started');

    await oidc.login({ accountId: 'acct-kate' });
    const end = await owner.follow(providerUrl, { until: (url) => url.origin === RETURN_ORIGIN });
    expect(end.url.href).toBe(connectedUrl('oidc', started.id));
    expect((await getToken('kate', 'oidc')).body.account_id).toBe('acct-kate');
  });

  test('the start link opened in a second browser is refused with 400, and the first browser still finishes', async () => {
    const started = await start('oidc', { user: 'leo' });
    const first = new Browser();
    const second = new Browser();
    const opened = await first.get(started.url);
    expect(opened.status).toBe(302);
    const refused = await second.get(started.url);
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body).error).toEqual({ code: 'invalid_request', message: expect.stringContaining('another browser') });
    expect(second.allCookies()).toEqual([]);
    await oidc.login({ accountId: 'acct-leo' });
    const end = await first.follow(opened.headers.get('location')!, { until: (url) => url.origin === RETURN_ORIGIN });
    expect(end.url.href).toBe(connectedUrl('oidc', started.id));
  });

  test('the start link reloaded in the browser that opened it sends it to the provider again', async () => {
    const started = await start('oidc', { user: 'leo2' });
    const browser = new Browser();
    expect((await browser.get(started.url)).status).toBe(302);
    const reloaded = await browser.get(started.url);
    expect(reloaded.status).toBe(302);
    expect(reloaded.headers.get('location')).toContain(oidc.authorizationUrl);
  });

  test('a replayed callback (same URL, same cookie) is a 400 page and changes nothing', async () => {
    await oidc.login({ accountId: 'acct-mia' });
    const started = await start('oidc', { user: 'mia' });
    const browser = new Browser();
    const opened = await browser.get(started.url);
    const cookie = bindingCookie(browser, started.id)!;
    const flow = await walkFlow(opened.headers.get('location')!, RETURN_ORIGIN, browser);
    expect(flow.end.url.href).toBe(connectedUrl('oidc', started.id));
    const version = (await getToken('mia', 'oidc')).body.version as number;

    const replayer = new Browser();
    replayer.setCookie(`${publicUrl}/callback/`, `${cookie.name}=${cookie.value}; Path=/; HttpOnly; SameSite=Lax`);
    const replay = await replayer.get(flow.callbackUrl!);
    expect(replay.status).toBe(400);
    expect(JSON.parse(replay.body).error).toEqual({ code: 'invalid_request', message: expect.stringContaining('already finished') });
    // The original browser, whose cookie was cleared, is refused too.
    expect((await browser.get(flow.callbackUrl!)).status).toBe(400);
    expect(await codeExchanges()).toHaveLength(1);
    expect((await getToken('mia', 'oidc')).body.version).toBe(version);
    expect((await getSession(started.id)).body).toMatchObject({ status: 'connected', version });
  });

  test('two callbacks at once from the right browser (a double click): one finishes the flow, the other is a 400 page, the code is exchanged once', async () => {
    await oidc.login({ accountId: 'acct-uma' });
    const started = await start('oidc', { user: 'uma' });
    const browser = new Browser();
    const atCallback = await browser.follow(started.url, { until: (url) => url.pathname === '/callback/oidc' });
    const answers = await Promise.all([browser.get(atCallback.url), browser.get(atCallback.url), browser.get(atCallback.url)]);
    expect(answers.map((answer) => answer.status).sort()).toEqual([302, 400, 400]);
    expect(answers.find((answer) => answer.status === 302)!.headers.get('location')).toBe(connectedUrl('oidc', started.id));
    expect(await codeExchanges()).toHaveLength(1);
    expect((await getSession(started.id)).body.status).toBe('connected');
  });

  test('a forged Host header changes neither the start URL nor the redirect_uri', async () => {
    const res = await request(vault.app)
      .post('/connect/oidc')
      .set('Authorization', auth.portal)
      .set('Host', 'evil.example')
      .set('X-Forwarded-Host', 'evil.example')
      .set('X-Forwarded-Proto', 'https')
      .send({ user: 'nina', return_to: RETURN_TO });
    expect(res.status).toBe(201);
    expect(res.body.url).toBe(`${publicUrl}/connect/start/${res.body.id as string}`);
    const opened = await request(vault.app).get(`/connect/start/${res.body.id as string}`).set('Host', 'evil.example').set('X-Forwarded-Host', 'evil.example');
    expect(opened.status).toBe(302);
    const location = new URL(opened.headers.location as string);
    expect(location.searchParams.get('redirect_uri')).toBe(`${publicUrl}/callback/oidc`);
    expect(opened.headers['set-cookie']![0]).not.toContain('evil');
  });

  test('the start and callback answers send no Referer and the binding cookie is HttpOnly, SameSite=Lax, Path=/ (the start URL and the callback both read it), for the flow lifetime', async () => {
    await oidc.login({ accountId: 'acct-olga' });
    const started = await start('oidc', { user: 'olga' });
    const browser = new Browser();
    const opened = await browser.get(started.url);
    expect(opened.status).toBe(302);
    expect(opened.headers.get('referrer-policy')).toBe('no-referrer');
    expect(opened.headers.get('cache-control')).toBe('no-store');
    const [setCookie, ...others] = opened.headers.getSetCookie();
    expect(others).toEqual([]);
    const attributes = setCookie!.split(';').map((part) => part.trim());
    expect(attributes[0]).toMatch(new RegExp(`^tv_connect_${started.id}=[A-Za-z0-9_-]{43}$`));
    expect(attributes).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'SameSite=Lax']));
    expect(attributes).not.toContain('Secure'); // publicUrl is http
    const maxAge = Number(attributes.find((part) => part.startsWith('Max-Age='))!.slice('Max-Age='.length));
    expect(maxAge).toBeGreaterThan(590);
    expect(maxAge).toBeLessThanOrEqual(600);
    const cookie = bindingCookie(browser, started.id)!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'lax', path: '/' });

    const atCallback = await browser.follow(opened.headers.get('location')!, { until: (url) => url.pathname === '/callback/oidc' });
    const finished = await browser.get(atCallback.url);
    expect(finished.status).toBe(302);
    expect(finished.headers.get('location')).toBe(connectedUrl('oidc', started.id));
    expect(finished.headers.get('referrer-policy')).toBe('no-referrer');
    // The cookie is cleared on the same path.
    const cleared = finished.headers.getSetCookie().find((header) => header.startsWith(`tv_connect_${started.id}=`));
    expect(cleared).toMatch(/Path=\/(;|$)/);
    expect(cleared).toMatch(/Expires=Thu, 01 Jan 1970/);
  });

  test('the 400 page of /connect/start sends no Referer either', async () => {
    const unknownStart = await request(vault.app).get(`/connect/start/cs_${randomBytes(16).toString('base64url')}`);
    expect(unknownStart.status).toBe(400);
    expect(unknownStart.headers['referrer-policy']).toBe('no-referrer');
  });

  test('a HEAD of the start link (a link checker) binds nothing: the user can still open it', async () => {
    const started = await start('oidc', { user: 'hal' });
    expect((await request(vault.app).head(new URL(started.url).pathname)).status).toBe(204);
    await oidc.login({ accountId: 'acct-hal' });
    const flow = await walkFlow(started.url, RETURN_ORIGIN, new Browser());
    expect(flow.end.url.href).toBe(connectedUrl('oidc', started.id));
  });

  test('the 400 page of /callback sends no Referer either', async () => {
    const unknownCallback = await request(vault.app).get('/callback/oidc?code=abc&state=cs_x.y');
    expect(unknownCallback.status).toBe(400);
    expect(unknownCallback.headers['referrer-policy']).toBe('no-referrer');
  });

  test('a session is shown only to the caller that started it', async () => {
    const started = await start('oidc', { user: 'pat' });
    expect((await getSession(started.id)).status).toBe(200);
    const other = await getSession(started.id, auth.otherPortal);
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('not_found');
    expect((await getSession(started.id, auth.backend)).status).toBe(403);
    expect((await getSession(`cs_${randomBytes(16).toString('base64url')}`)).status).toBe(404);
  });

  test('POST /connect: a provider without authorizationUrl is 400, an unknown provider 404, a caller without the connect scope 403', async () => {
    const body = { user: 'alice', return_to: RETURN_TO };
    const noUrl = await request(vault.app).post('/connect/github').set('Authorization', auth.portal).send(body);
    expect(noUrl.status).toBe(400);
    expect(noUrl.body.error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('authorizationUrl') });
    expect((await request(vault.app).post('/connect/nope').set('Authorization', auth.portal).send(body)).status).toBe(404);
    const forbidden = await request(vault.app).post('/connect/oidc').set('Authorization', auth.backend).send(body);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error.code).toBe('forbidden');
    expect((await request(vault.app).post('/connect/oidc').send(body)).status).toBe(401);
  });

  test('a start link opened after the flow expired is a 400 page; the session reads expired', async () => {
    const started = await start('oidc', { user: 'quinn' });
    vault.clock.advance(11 * 60_000);
    const opened = await new Browser().get(started.url);
    expect(opened.status).toBe(400);
    expect(JSON.parse(opened.body).error.code).toBe('invalid_request');
    expect((await getSession(started.id)).body.status).toBe('expired');
  });

  test('a callback after the flow expired sends the browser to return_to with error=expired, without exchanging the code', async () => {
    await oidc.login({ accountId: 'acct-rita' });
    const started = await start('oidc', { user: 'rita' });
    const browser = new Browser();
    const opened = await browser.get(started.url);
    expect(opened.status).toBe(302);
    vault.clock.advance(11 * 60_000);
    const end = await browser.follow(opened.headers.get('location')!, { until: (url) => url.origin === RETURN_ORIGIN });
    expect(end.url.href).toBe(errorUrl('oidc', started.id, 'expired'));
    expect(await codeExchanges()).toEqual([]);
    expect((await getToken('rita', 'oidc')).status).toBe(404);
    expect((await getSession(started.id)).body.status).toBe('expired');
  });
});

test('two replicas: a flow started on one and finished on the other connects', async () => {
  // Replica A shares Redis, keyring, caller keys, clock and config with the vault listening on
  // publicUrl (replica B); it listens on a port of its own for the start link.
  const replica = await startVault({ redis, keys, keyringJson: vault.keyringJson, clock: vault.clock, config: vaultConfig });
  const replicaServer = await listen(replica.app);
  try {
    await oidc.login({ accountId: 'acct-sam' });
    const res = await request(replica.app).post('/connect/oidc').set('Authorization', auth.portal).send({ user: 'sam', return_to: RETURN_TO });
    expect(res.status).toBe(201);
    const startOnA = new URL(res.body.url as string);
    startOnA.port = String(portOf(replicaServer));
    const flow = await walkFlow(startOnA, RETURN_ORIGIN);
    expect(flow.callbackUrl!.origin).toBe(publicUrl);
    expect(flow.end.url.href).toBe(connectedUrl('oidc', res.body.id as string));
    expect((await request(replica.app).get('/tokens/sam/oidc').set('Authorization', auth.backend)).body.account_id).toBe('acct-sam');
    expect((await request(replica.app).get(`/connect/sessions/${res.body.id as string}`).set('Authorization', auth.portal)).body.status).toBe('connected');
  } finally {
    await closeServer(replicaServer);
    await replica.close();
  }
});

test('no secret of any flow reaches the logs (trace level) or Redis in clear', async () => {
  await oidc.login({ accountId: 'acct-tess' });
  const started = await start('oidc', { user: 'tess' });
  const browser = new Browser();
  const opened = await browser.get(started.url);
  const binding = bindingCookie(browser, started.id)!.value;
  const flow = await walkFlow(opened.headers.get('location')!, RETURN_ORIGIN, browser);
  expect(flow.end.url.href).toBe(connectedUrl('oidc', started.id));
  expect((await request(vault.app).post('/tokens/tess/oidc/refresh').set('Authorization', auth.backend)).status).toBe(200);
  await new Promise((resolve) => setImmediate(resolve));

  const stateSecret = new URL(opened.headers.get('location')!).searchParams.get('state')!.split('.')[1]!;
  const secrets = traffic.secrets();
  secrets.set('state secret', stateSecret);
  secrets.set('binding cookie', binding);
  secrets.set('client secret basic', oidc.clients.basic.secret);
  secrets.set('client secret post', oidc.clients.post.secret);
  secrets.set('wrong client secret', 'not-the-basic-secret');
  const labels = [...secrets.keys()].join('\n');
  for (const expected of ['request code', 'request code_verifier', 'answer access_token', 'answer refresh_token', 'answer id_token', 'request refresh_token']) {
    expect(labels).toContain(expected);
  }
  const logs = vault.logs.text();
  expect(logs).toContain('/callback/oidc?');
  expect(secretsIn(logs, Object.fromEntries(secrets))).toEqual([]);
  // Redis holds credentials and sessions sealed.
  expect(secretsIn((await dumpRedis(client, '')).values, Object.fromEntries(secrets))).toEqual([]);
});
