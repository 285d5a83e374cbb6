import { generateKeyPairSync } from 'node:crypto';
import type { Server } from 'node:http';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { callerKeys, startVault, TestClock, type TestVault } from '../../helpers/app';
import { Browser } from '../../helpers/browser';
import { closeServer, connectAuth, connectCallers, listen, portOf, ProviderTraffic, walkFlow } from '../../helpers/connect';
import { dumpRedis, secretsIn } from '../../helpers/checks';
import { OAuth1Server, type OAuth1ServerRequest } from '../../helpers/providers/oauth1-server';
import { RedisServer } from '../../helpers/redis-server';

/**
 * The OAuth 1.0a three-legged connect flow (DESIGN §4, RFC 5849 §2): POST /connect/:provider gets
 * temporary credentials with the vault's callback, the browser opens the vault's start URL, is
 * sent to the provider's authorize page (approved or denied headlessly by OAuth1Server), comes
 * back to /callback/:provider, and the vault trades the verifier for token credentials. The
 * provider verifies every signature with its own code. Signatures carry timestamps the provider
 * checks against its clock: the vault runs on real time.
 */

const RETURN_ORIGIN = 'http://127.0.0.1:9';
const RETURN_TO = `${RETURN_ORIGIN}/app/done`;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });

const CONSUMERS = {
  twitter: { key: 'ck-twitter-1f4a', secret: 'cs-twitter-secret-8d2c9e', signatureMethod: 'HMAC-SHA1' },
  trello: { key: 'ck-trello-7b3e', secret: 'cs-trello-secret-4a1f6b', signatureMethod: 'HMAC-SHA1' },
  rsa: { key: 'ck-rsa-2c9d', secret: 'cs-rsa-unused-secret-5e8a1c', signatureMethod: 'RSA-SHA1', publicKey: rsa.publicKey },
} as const;

let redis: RedisServer;
/** The provider of twitter and trello (HMAC-SHA1, oauth_version accepted). */
let provider: OAuth1Server;
/** The provider of rsa (RSA-SHA1), which refuses any request carrying oauth_version. */
let strict: OAuth1Server;
let vault: TestVault;
let server: Server;
let publicUrl: string;
let client: Redis;
const keys = callerKeys();
const auth = connectAuth(keys);
const traffic = new ProviderTraffic();

function urlsOf(oauth1: OAuth1Server) {
  return { requestTokenUrl: oauth1.requestTokenUrl, authorizeUrl: oauth1.authorizeUrl, accessTokenUrl: oauth1.accessTokenUrl };
}

beforeAll(async () => {
  server = await listen((req, res) => vault.app(req, res));
  publicUrl = `http://127.0.0.1:${portOf(server)}`;
  redis = await RedisServer.start();
  provider = await new OAuth1Server({ consumers: [CONSUMERS.twitter, CONSUMERS.trello] }).start();
  strict = await new OAuth1Server({ consumers: [CONSUMERS.rsa], rejectVersion: true }).start();
  const twitter = { type: 'oauth1', consumerKey: CONSUMERS.twitter.key, consumerSecret: CONSUMERS.twitter.secret, ...urlsOf(provider) };
  vault = await startVault({
    redis,
    keys,
    clock: TestClock.realTime(),
    logLevel: 'trace',
    deps: { fetch: traffic.fetch },
    config: (standard) => ({
      ...standard,
      callers: connectCallers(keys),
      server: { publicUrl },
      connect: { returnTo: [`${RETURN_ORIGIN}/app`] },
      providers: {
        twitter: { ...twitter, signatureMethod: 'HMAC-SHA1', includeVersion: true, accountIdField: 'user_id' },
        rsa: {
          type: 'oauth1',
          consumerKey: CONSUMERS.rsa.key,
          consumerSecret: CONSUMERS.rsa.secret,
          signatureMethod: 'RSA-SHA1',
          privateKey: rsa.privateKey,
          includeVersion: false,
          accountIdField: 'user_id',
          ...urlsOf(strict),
        },
        trello: { preset: 'trello', consumerKey: CONSUMERS.trello.key, consumerSecret: CONSUMERS.trello.secret, ...urlsOf(provider), authorizeParams: { name: 'Acme Portal' } },
        // Nothing listens on port 1 (nor may a test bind it).
        down: { ...twitter, requestTokenUrl: 'http://127.0.0.1:1/oauth/request_token' },
        'wrong-secret': { ...twitter, consumerSecret: 'not-the-consumer-secret' },
        'no-urls': { type: 'oauth1', consumerKey: 'ck-none', consumerSecret: 'cs-none-secret' },
      },
    }),
  });
  client = redis.client();
});

afterAll(async () => {
  client?.disconnect();
  await closeServer(server);
  await vault?.close();
  await Promise.all([provider?.stop(), strict?.stop(), redis?.stop()]);
});

beforeEach(() => {
  provider.clearRequests();
  strict.clearRequests();
});

interface Started {
  id: string;
  flow: string;
  url: string;
  expires_at: string;
}

async function start(providerId: string, user: string): Promise<Started> {
  const res = await request(vault.app).post(`/connect/${providerId}`).set('Authorization', auth.portal).send({ user, return_to: RETURN_TO });
  expect(res.status).toBe(201);
  return res.body as Started;
}

const getToken = (user: string, providerId: string) => request(vault.app).get(`/tokens/${user}/${providerId}`).set('Authorization', auth.backend);
const getSession = (id: string) => request(vault.app).get(`/connect/sessions/${id}`).set('Authorization', auth.portal);
const calls = (oauth1: OAuth1Server, path: string): OAuth1ServerRequest[] => oauth1.requests.filter((r) => r.url.split('?')[0] === path);

/** The temporary credentials the provider answered to the vault's last request-token call. */
function lastTemporaryCredentials(): { token: string; secret: string } {
  const answer = ProviderTraffic.fields(traffic.to('/oauth/request_token').at(-1)!.answer);
  return { token: answer.oauth_token!, secret: answer.oauth_token_secret! };
}

function outcomeUrl(providerId: string, id: string, outcome: { error?: string } = {}): string {
  return outcome.error
    ? `${RETURN_TO}?status=error&error=${outcome.error}&provider=${providerId}&session=${id}`
    : `${RETURN_TO}?status=connected&provider=${providerId}&session=${id}`;
}

/** POST /tokens/:user/:provider/sign, then the signed request itself to the provider's /api/. */
async function signedCall(oauth1: OAuth1Server, user: string, providerId: string) {
  const url = `${oauth1.url}/api/statuses/update.json?include_entities=true`;
  const form = { status: 'Hello Ladies + Gentlemen, a signed OAuth request!' };
  const signed = await request(vault.app).post(`/tokens/${user}/${providerId}/sign`).set('Authorization', auth.portal).send({ method: 'POST', url, form });
  expect(signed.status).toBe(200);
  const answer = await fetch(url, {
    method: 'POST',
    headers: { authorization: signed.body.authorization as string, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { authorization: signed.body.authorization as string, status: answer.status, body: (await answer.json()) as Record<string, unknown> };
}

test('HMAC-SHA1 with oauth_version: three legs end to end, account id from user_id, and the stored credential signs requests the provider accepts', async () => {
  const started = await start('twitter', 'alice');
  expect(started).toEqual({ id: expect.stringMatching(/^cs_/), flow: 'oauth1', url: `${publicUrl}/connect/start/${started.id}`, expires_at: expect.any(String) });

  // Leg 1 happened at POST: temporary credentials for the vault's callback, carrying the state.
  const [requestToken, ...more] = calls(provider, '/oauth/request_token');
  expect(more).toEqual([]);
  expect(requestToken!.status).toBe(200);
  const callback = new URL(requestToken!.authorization!.oauth_callback!);
  expect(`${callback.origin}${callback.pathname}`).toBe(`${publicUrl}/callback/twitter`);
  expect(callback.searchParams.get('state')).toMatch(new RegExp(`^${started.id}\\.[A-Za-z0-9_-]{43}$`));
  expect(requestToken!.authorization).toMatchObject({ oauth_consumer_key: CONSUMERS.twitter.key, oauth_signature_method: 'HMAC-SHA1', oauth_version: '1.0' });
  const temporary = lastTemporaryCredentials();

  // Leg 2: the browser is bound, sent to the authorize page, approves, comes back with the verifier.
  provider.nextAuthorization({ accountId: 'tw-alice', screenName: 'alice' });
  const flow = await walkFlow(started.url, RETURN_ORIGIN);
  expect(flow.providerUrl!.href).toBe(`${provider.authorizeUrl}?oauth_token=${temporary.token}`);
  expect(flow.callbackUrl!.searchParams.get('oauth_token')).toBe(temporary.token);
  expect(flow.end.url.href).toBe(outcomeUrl('twitter', started.id));

  // Leg 3: the verifier, signed with the temporary credentials.
  const [accessToken] = calls(provider, '/oauth/access_token');
  expect(accessToken!.status).toBe(200);
  expect(accessToken!.authorization).toMatchObject({ oauth_token: temporary.token, oauth_verifier: flow.callbackUrl!.searchParams.get('oauth_verifier'), oauth_version: '1.0' });
  const issued = ProviderTraffic.fields(traffic.to('/oauth/access_token').at(-1)!.answer);

  const token = await getToken('alice', 'twitter');
  expect(token.status).toBe(200);
  expect(token.body).toEqual({
    user: 'alice',
    provider: 'twitter',
    type: 'oauth1',
    oauth_token: issued.oauth_token,
    oauth_token_secret: issued.oauth_token_secret,
    account_id: 'tw-alice',
    version: expect.any(Number),
  });
  expect((await getSession(started.id)).body).toEqual({
    id: started.id,
    provider: 'twitter',
    user: 'alice',
    flow: 'oauth1',
    status: 'connected',
    expires_at: started.expires_at,
    account_id: 'tw-alice',
    version: token.body.version,
  });

  const call = await signedCall(provider, 'alice', 'twitter');
  expect(call.authorization).toContain('oauth_version="1.0"');
  expect(call).toMatchObject({ status: 200, body: { ok: true, user_id: 'tw-alice', consumer: CONSUMERS.twitter.key } });
});

test('RSA-SHA1 without oauth_version (a provider that refuses it): three legs end to end, and signed requests are accepted', async () => {
  const started = await start('rsa', 'bob');
  const [requestToken] = calls(strict, '/oauth/request_token');
  expect(requestToken!.status).toBe(200);
  expect(requestToken!.authorization).toMatchObject({ oauth_consumer_key: CONSUMERS.rsa.key, oauth_signature_method: 'RSA-SHA1' });
  expect(requestToken!.authorization!.oauth_version).toBeUndefined();

  strict.nextAuthorization({ accountId: 'rsa-bob' });
  const flow = await walkFlow(started.url, RETURN_ORIGIN);
  expect(flow.end.url.href).toBe(outcomeUrl('rsa', started.id));
  expect(calls(strict, '/oauth/access_token').map((r) => r.status)).toEqual([200]);
  expect((await getToken('bob', 'rsa')).body.account_id).toBe('rsa-bob');

  const call = await signedCall(strict, 'bob', 'rsa');
  expect(call.authorization).toContain('oauth_signature_method="RSA-SHA1"');
  expect(call.authorization).not.toContain('oauth_version');
  expect(call).toMatchObject({ status: 200, body: { ok: true, user_id: 'rsa-bob', consumer: CONSUMERS.rsa.key } });
});

test('the temporary credentials wait in Redis sealed, never in clear, and are gone once the flow is finished', async () => {
  const started = await start('twitter', 'carol');
  const temporary = lastTemporaryCredentials();
  const secrets = new Map([
    ['request token', temporary.token],
    ['request token secret', temporary.secret],
  ]);
  const pending = (await dumpRedis(client, '')).values;
  expect(pending.includes(Buffer.from(started.id))).toBe(true);
  expect(secretsIn(pending, Object.fromEntries(secrets))).toEqual([]);

  provider.nextAuthorization({ accountId: 'tw-carol' });
  const flow = await walkFlow(started.url, RETURN_ORIGIN);
  expect(flow.end.url.href).toBe(outcomeUrl('twitter', started.id));
  const issued = ProviderTraffic.fields(traffic.to('/oauth/access_token').at(-1)!.answer);
  secrets.set('verifier', flow.callbackUrl!.searchParams.get('oauth_verifier')!);
  secrets.set('access token', issued.oauth_token!);
  secrets.set('access token secret', issued.oauth_token_secret!);
  const session = await client.hgetall(vault.deps.keys.connectSession(started.id));
  expect(session).toMatchObject({ status: 'connected', used: '1' });
  expect(session.blob).toBeUndefined();
  expect(secretsIn((await dumpRedis(client, '')).values, Object.fromEntries(secrets))).toEqual([]);
});

test('the user denies at the authorize page: return_to gets error=access_denied, no token credentials are asked for or stored', async () => {
  const started = await start('twitter', 'dave');
  provider.nextAuthorization({ deny: true });
  const flow = await walkFlow(started.url, RETURN_ORIGIN);
  expect(flow.callbackUrl!.searchParams.get('denied')).toBe(lastTemporaryCredentials().token);
  expect(flow.end.url.href).toBe(outcomeUrl('twitter', started.id, { error: 'access_denied' }));
  expect(calls(provider, '/oauth/access_token')).toEqual([]);
  expect((await getToken('dave', 'twitter')).status).toBe(404);
  expect((await getSession(started.id)).body).toMatchObject({ status: 'error', error: 'access_denied' });
});

test('a callback carrying another oauth_token than the flow\'s request token ends in error=invalid_request, without a token exchange', async () => {
  const started = await start('twitter', 'erin');
  const own = lastTemporaryCredentials();
  await start('twitter', 'mallory');
  const other = lastTemporaryCredentials();
  expect(other.token).not.toBe(own.token);

  const browser = new Browser();
  provider.nextAuthorization({ accountId: 'tw-erin' });
  const atCallback = await browser.follow(started.url, { until: (url) => url.pathname === '/callback/twitter' });
  const swapped = new URL(atCallback.url);
  expect(swapped.searchParams.get('oauth_token')).toBe(own.token);
  swapped.searchParams.set('oauth_token', other.token);
  const end = await browser.follow(swapped, { until: (url) => url.origin === RETURN_ORIGIN });
  expect(end.url.href).toBe(outcomeUrl('twitter', started.id, { error: 'invalid_request' }));
  expect(calls(provider, '/oauth/access_token')).toEqual([]);
  expect((await getToken('erin', 'twitter')).status).toBe(404);
  expect((await getSession(started.id)).body).toMatchObject({ status: 'error', error: 'invalid_request' });
});

test('a callback with a wrong oauth_verifier: the provider refuses the token call, return_to gets error=provider_error', async () => {
  const started = await start('twitter', 'jill');
  provider.nextAuthorization({ accountId: 'tw-jill' });
  const browser = new Browser();
  const atCallback = await browser.follow(started.url, { until: (url) => url.pathname === '/callback/twitter' });
  const altered = new URL(atCallback.url);
  altered.searchParams.set('oauth_verifier', 'v-guessed');
  const end = await browser.follow(altered, { until: (url) => url.origin === RETURN_ORIGIN });
  expect(end.url.href).toBe(outcomeUrl('twitter', started.id, { error: 'provider_error' }));
  expect(calls(provider, '/oauth/access_token').map((r) => [r.status, r.reason])).toEqual([[401, 'invalid verifier']]);
  expect((await getToken('jill', 'twitter')).status).toBe(404);
});

test('authorizeParams (the trello preset\'s, merged with the entry\'s) are on the authorize URL, and the flow connects', async () => {
  const started = await start('trello', 'frank');
  const temporary = lastTemporaryCredentials();
  provider.nextAuthorization({ accountId: 'trello-frank' });
  const flow = await walkFlow(started.url, RETURN_ORIGIN);
  expect(`${flow.providerUrl!.origin}${flow.providerUrl!.pathname}`).toBe(provider.authorizeUrl);
  expect(Object.fromEntries(flow.providerUrl!.searchParams)).toEqual({ scope: 'read', expiration: 'never', name: 'Acme Portal', oauth_token: temporary.token });
  expect(flow.end.url.href).toBe(outcomeUrl('trello', started.id));
  const token = await getToken('frank', 'trello');
  expect(token.status).toBe(200);
  // No accountIdField for trello: no account id.
  expect(token.body.account_id).toBeUndefined();
});

test('the request-token endpoint is down: POST /connect answers 503 provider_unavailable with Retry-After, and no flow is created', async () => {
  const before = (await client.keys('*{connect}:session:*')).length;
  const res = await request(vault.app).post('/connect/down').set('Authorization', auth.portal).send({ user: 'gina', return_to: RETURN_TO });
  expect(res.status).toBe(503);
  expect(res.body.error.code).toBe('provider_unavailable');
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  expect((await client.keys('*{connect}:session:*')).length).toBe(before);
});

test('the provider refuses the request-token call (wrong consumer secret): POST /connect answers 502 provider_error', async () => {
  const res = await request(vault.app).post('/connect/wrong-secret').set('Authorization', auth.portal).send({ user: 'hank', return_to: RETURN_TO });
  expect(res.status).toBe(502);
  expect(res.body.error.code).toBe('provider_error');
  expect(calls(provider, '/oauth/request_token').map((r) => [r.status, r.reason])).toEqual([[401, 'invalid signature']]);
});

test('a provider without the three connect URLs has no connect flow: 400', async () => {
  const res = await request(vault.app).post('/connect/no-urls').set('Authorization', auth.portal).send({ user: 'ivy', return_to: RETURN_TO });
  expect(res.status).toBe(400);
  expect(res.body.error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('requestTokenUrl') });
});

test('no secret of any flow reaches the logs (trace level): consumer secrets, private key, temporary and token credentials, verifiers, signatures', async () => {
  const started = await start('twitter', 'kim');
  provider.nextAuthorization({ accountId: 'tw-kim' });
  expect((await walkFlow(started.url, RETURN_ORIGIN)).end.url.href).toBe(outcomeUrl('twitter', started.id));
  expect((await signedCall(provider, 'kim', 'twitter')).status).toBe(200);
  await new Promise((resolve) => setImmediate(resolve));

  // Every flow of this file: what crossed the wire between the vault and the providers, and the configured secrets.
  const secrets = traffic.secrets();
  for (const [id, consumer] of Object.entries(CONSUMERS)) secrets.set(`${id} consumer secret`, consumer.secret);
  secrets.set('rsa private key', rsa.privateKey.split('\n')[1]!);
  const labels = [...secrets.keys()].join('\n');
  for (const expected of ['answer oauth_token_secret', 'oauth_verifier', 'oauth_signature']) expect(labels).toContain(expected);
  const logs = vault.logs.text();
  expect(logs).toContain('/callback/twitter?');
  expect(secretsIn(logs, Object.fromEntries(secrets))).toEqual([]);
});
