import { generateKeyPairSync, randomBytes } from 'node:crypto';
import request from 'supertest';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { secretsIn } from '../../helpers/checks';
import { OAuth1Server, type IssuedAccessToken } from '../../helpers/providers/oauth1-server';
import { RedisServer } from '../../helpers/redis-server';

/**
 * OAuth 1.0a signing through the vault (DESIGN §4 POST /tokens/:user/:provider/sign): the vault
 * signs, the caller sends the request itself to a real OAuth 1.0a provider that verifies the
 * signature with its own, independent code. For signOnly providers the token secret never
 * leaves the vault; PLAINTEXT is allowed only for providers that are not signOnly.
 *
 * Signatures carry a timestamp the provider checks against its clock: this vault runs on real time.
 */

const SIGNER_KEY = `tv_test_signer_${randomBytes(16).toString('hex')}`;
const GITHUB_SIGNER_KEY = `tv_test_gh_signer_${randomBytes(16).toString('hex')}`;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });

/** Providers signed against the OAuth1Server, each with its own consumer there. */
const CONSUMERS = {
  'tw-hmac': { key: 'ck-hmac-4f1a', secret: 'cs-hmac-secret-9b2e7d', signatureMethod: 'HMAC-SHA1' },
  'tw-signonly': { key: 'ck-signonly-7c3d', secret: 'cs-signonly-secret-1a8f4c', signatureMethod: 'HMAC-SHA1' },
  'tw-plain': { key: 'ck-plain-2e9b', secret: 'cs-plain-secret-6d3a0e', signatureMethod: 'PLAINTEXT' },
  'tw-sha256': { key: 'ck-sha256-8a4f', secret: 'cs-sha256-secret-3f7b2a', signatureMethod: 'HMAC-SHA256' },
  'tw-rsa': { key: 'ck-rsa-5b1c', secret: 'cs-rsa-unused-secret-8e2d', signatureMethod: 'RSA-SHA1' },
} as const;
type SignedProvider = keyof typeof CONSUMERS;

/** Providers of the server that refuses oauth_version. */
const STRICT_CONSUMERS = {
  'tw-noversion': { key: 'ck-nover-3d7e', secret: 'cs-nover-secret-4c1b9f', signatureMethod: 'HMAC-SHA1', includeVersion: false },
  'tw-version': { key: 'ck-ver-6f2a', secret: 'cs-ver-secret-0e5d3b', signatureMethod: 'HMAC-SHA1', includeVersion: true },
} as const;

/** Twitter's "Creating a signature" guide: the published consumer, token, nonce, timestamp and signature. */
const TWITTER = {
  consumerKey: 'xvz1evFS4wEEPTGEFPHBog',
  consumerSecret: 'kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw',
  token: '370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb',
  tokenSecret: 'LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE',
  nonce: 'kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg',
  timestamp: '1318622958',
  signature: 'hCtSmYh+iHYCEqBWrE7C7hYmtUk=',
};

let redis: RedisServer;
let server: OAuth1Server;
let strict: OAuth1Server;
let vault: TestVault;
/** Every secret this file gives the vault or gets from a provider: none may reach the logs. */
const secrets: Record<string, string> = {
  rsaPrivateKey: rsa.privateKey.split('\n')[1]!,
  twitterConsumerSecret: TWITTER.consumerSecret,
  twitterToken: TWITTER.token,
  twitterTokenSecret: TWITTER.tokenSecret,
};
for (const [id, consumer] of [...Object.entries(CONSUMERS), ...Object.entries(STRICT_CONSUMERS)]) secrets[`${id}:consumerSecret`] = consumer.secret;

beforeAll(async () => {
  redis = await RedisServer.start();
  server = await new OAuth1Server({
    consumers: Object.values(CONSUMERS).map((c) => ({ ...c, ...(c.signatureMethod === 'RSA-SHA1' ? { publicKey: rsa.publicKey } : {}) })),
  }).start();
  strict = await new OAuth1Server({ consumers: Object.values(STRICT_CONSUMERS), rejectVersion: true }).start();
  vault = await startVault({
    redis,
    clock: TestClock.realTime(),
    config: (standard) => {
      const providers = standard.providers as Record<string, Record<string, unknown>>;
      for (const [id, c] of Object.entries(CONSUMERS)) {
        providers[id] = {
          type: 'oauth1',
          consumerKey: c.key,
          consumerSecret: c.secret,
          signatureMethod: c.signatureMethod,
          ...(c.signatureMethod === 'RSA-SHA1' ? { privateKey: rsa.privateKey } : {}),
          ...(id === 'tw-signonly' ? { signOnly: true } : {}),
        };
      }
      for (const [id, c] of Object.entries(STRICT_CONSUMERS)) {
        providers[id] = { type: 'oauth1', consumerKey: c.key, consumerSecret: c.secret, signatureMethod: c.signatureMethod, includeVersion: c.includeVersion };
      }
      providers['twitter-docs'] = { type: 'oauth1', consumerKey: TWITTER.consumerKey, consumerSecret: TWITTER.consumerSecret };
      (standard.callers as unknown[]).push(
        { name: 'signer', key: SIGNER_KEY, scopes: ['tokens:sign', 'tokens:read'], providers: ['*'] },
        { name: 'github-signer', key: GITHUB_SIGNER_KEY, scopes: ['tokens:sign'], providers: ['github'] },
      );
      return standard;
    },
  });
});

afterAll(async () => {
  await vault?.close();
  await Promise.all([server?.stop(), strict?.stop()]);
  await redis?.stop();
});

// ---- helpers ---------------------------------------------------------------------------------

interface SignBody {
  method?: unknown;
  url?: unknown;
  form?: unknown;
  nonce?: unknown;
  timestamp?: unknown;
  [other: string]: unknown;
}

const bearer = (key: string) => `Bearer ${key}`;

async function putOAuth1(user: string, provider: string, token: string, tokenSecret: string): Promise<number> {
  secrets[`${user}/${provider}:token`] = token;
  secrets[`${user}/${provider}:tokenSecret`] = tokenSecret;
  const res = await request(vault.app)
    .put(`/tokens/${user}/${provider}`)
    .set('Authorization', bearer(vault.keys.writer))
    .send({ type: 'oauth1', oauth_token: token, oauth_token_secret: tokenSecret });
  expect([200, 201]).toContain(res.status);
  return res.body.version as number;
}

/** A credential the provider issued to `provider`'s consumer, stored in the vault for `user`. */
async function connect(user: string, provider: SignedProvider | keyof typeof STRICT_CONSUMERS): Promise<IssuedAccessToken & { version: number }> {
  const target = provider in CONSUMERS ? server : strict;
  const consumer = provider in CONSUMERS ? CONSUMERS[provider as SignedProvider] : STRICT_CONSUMERS[provider as keyof typeof STRICT_CONSUMERS];
  const issued = target.issueAccessToken({ consumerKey: consumer.key, accountId: `acct-${user}` });
  const version = await putOAuth1(user, provider, issued.token, issued.tokenSecret);
  return { ...issued, version };
}

const sign = (user: string, provider: string, body: SignBody, key = SIGNER_KEY) =>
  request(vault.app).post(`/tokens/${user}/${provider}/sign`).set('Authorization', bearer(key)).send(body);

/** Sends the request the vault signed, as the caller would, with a form body when there is one. */
async function send(method: string, url: string, authorization: string, form?: [string, string][]): Promise<{ status: number; body: string }> {
  const res = await fetch(url, {
    method,
    headers: { authorization, ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    ...(form ? { body: new URLSearchParams(form).toString() } : {}),
  });
  return { status: res.status, body: await res.text() };
}

/** The Authorization header's parameters, decoded. */
function headerParameters(authorization: string): Record<string, string> {
  expect(authorization.startsWith('OAuth ')).toBe(true);
  return Object.fromEntries(
    authorization
      .slice('OAuth '.length)
      .split(', ')
      .map((item) => {
        const [, name, value] = /^([^=]+)="([^"]*)"$/.exec(item)!;
        return [decodeURIComponent(name!), decodeURIComponent(value!)];
      }),
  );
}

// ---- scenarios -------------------------------------------------------------------------------

test('a GET with a query and a POST with a form, signed by the vault (HMAC-SHA1), are accepted by the provider', async () => {
  const issued = await connect('sign-ann', 'tw-hmac');

  const getUrl = `${server.url}/api/echo?q=caf%C3%A9%20au%20lait&plus=a%2Bb&empty=&list=2&list=1`;
  const signedGet = await sign('sign-ann', 'tw-hmac', { method: 'GET', url: getUrl });
  expect(signedGet.status).toBe(200);
  expect(Object.keys(signedGet.body).sort()).toEqual(['authorization', 'oauth_signature']);
  const parameters = headerParameters(signedGet.body.authorization as string);
  expect(parameters).toEqual({
    oauth_consumer_key: CONSUMERS['tw-hmac'].key,
    oauth_token: issued.token,
    oauth_signature_method: 'HMAC-SHA1',
    oauth_timestamp: expect.stringMatching(/^\d+$/),
    oauth_nonce: expect.stringMatching(/^[A-Za-z0-9]{32}$/),
    oauth_version: '1.0',
    oauth_signature: signedGet.body.oauth_signature,
  });
  expect(Math.abs(Number(parameters.oauth_timestamp) - Date.now() / 1000)).toBeLessThan(5);

  const got = await send('GET', getUrl, signedGet.body.authorization as string);
  expect(got).toEqual({ status: 200, body: JSON.stringify({ ok: true, user_id: 'acct-sign-ann', consumer: CONSUMERS['tw-hmac'].key }) });

  const form: [string, string][] = [
    ['status', 'Hello Ladies + Gentlemen, a signed OAuth request!'],
    ['tag', 'b'],
    ['tag', 'a'],
    ['note', 'ünïcödé ☃ & = %'],
  ];
  const postUrl = `${server.url}/api/statuses/update.json?include_entities=true`;
  const signedPost = await sign('sign-ann', 'tw-hmac', { method: 'post', url: postUrl, form: { status: form[0]![1], tag: ['b', 'a'], note: form[3]![1] } });
  expect(signedPost.status).toBe(200);
  const posted = await send('POST', postUrl, signedPost.body.authorization as string, form);
  expect(posted.status).toBe(200);

  // A new nonce each time: the same request signed twice is accepted twice.
  const again = await sign('sign-ann', 'tw-hmac', { method: 'GET', url: getUrl });
  expect(headerParameters(again.body.authorization as string).oauth_nonce).not.toBe(parameters.oauth_nonce);
  expect((await send('GET', getUrl, again.body.authorization as string)).status).toBe(200);

  // The provider refuses what was not signed: another form value.
  const tampered = await send('POST', postUrl, signedPost.body.authorization as string, [['status', 'something else']]);
  expect(tampered.status).toBe(401);
});

test("Twitter's worked example through the API: the published signature hCtSmYh+iHYCEqBWrE7C7hYmtUk= and header", async () => {
  await putOAuth1('twitter-docs-user', 'twitter-docs', TWITTER.token, TWITTER.tokenSecret);
  const body = {
    method: 'POST',
    url: 'https://api.twitter.com/1.1/statuses/update.json?include_entities=true',
    form: { status: 'Hello Ladies + Gentlemen, a signed OAuth request!' },
    nonce: TWITTER.nonce,
    timestamp: TWITTER.timestamp,
  };
  const expected = {
    authorization:
      'OAuth oauth_consumer_key="xvz1evFS4wEEPTGEFPHBog", oauth_nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", ' +
      'oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D", oauth_signature_method="HMAC-SHA1", oauth_timestamp="1318622958", ' +
      'oauth_token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", oauth_version="1.0"',
    oauth_signature: TWITTER.signature,
  };
  const res = await sign('twitter-docs-user', 'twitter-docs', body);
  expect(res.status).toBe(200);
  expect(res.body).toEqual(expected);
  // The timestamp may be a JSON number too.
  expect((await sign('twitter-docs-user', 'twitter-docs', { ...body, timestamp: Number(TWITTER.timestamp) })).body).toEqual(expected);
});

test('includeVersion: false leaves oauth_version out, and a provider that refuses oauth_version accepts the request', async () => {
  const url = `${strict.url}/api/echo?x=1`;
  await connect('sign-bea', 'tw-noversion');
  const signed = await sign('sign-bea', 'tw-noversion', { method: 'GET', url });
  expect(signed.status).toBe(200);
  expect(signed.body.authorization).not.toContain('oauth_version');
  expect((await send('GET', url, signed.body.authorization as string)).status).toBe(200);

  // The same provider with the default includeVersion: true is refused there.
  await connect('sign-bea', 'tw-version');
  const withVersion = await sign('sign-bea', 'tw-version', { method: 'GET', url });
  expect(headerParameters(withVersion.body.authorization as string).oauth_version).toBe('1.0');
  expect(await send('GET', url, withVersion.body.authorization as string)).toEqual({ status: 400, body: 'oauth_version is not accepted' });
});

test('signOnly provider: GET /tokens never shows oauth_token_secret, yet /sign works against the provider', async () => {
  const issued = await connect('sign-cid', 'tw-signonly');
  const token = await request(vault.app).get('/tokens/sign-cid/tw-signonly').set('Authorization', bearer(SIGNER_KEY));
  expect(token.status).toBe(200);
  expect(token.body).toEqual({ user: 'sign-cid', provider: 'tw-signonly', version: issued.version, type: 'oauth1', oauth_token: issued.token });
  expect(token.text).not.toContain(issued.tokenSecret);
  // Not by another caller either.
  const asReader = await request(vault.app).get('/tokens/sign-cid/tw-signonly').set('Authorization', bearer(vault.keys.reader));
  expect(asReader.body).not.toHaveProperty('oauth_token_secret');

  const url = `${server.url}/api/echo?signonly=yes`;
  const signed = await sign('sign-cid', 'tw-signonly', { method: 'GET', url });
  expect(signed.status).toBe(200);
  expect(signed.text).not.toContain(issued.tokenSecret);
  expect((await send('GET', url, signed.body.authorization as string)).status).toBe(200);
});

test.each([
  ['tw-plain', 'PLAINTEXT'],
  ['tw-sha256', 'HMAC-SHA256'],
  ['tw-rsa', 'RSA-SHA1'],
] as const)('%s (%s): signed by the vault, accepted by the provider', async (provider, method) => {
  const user = `sign-${provider}`;
  const issued = await connect(user, provider);
  const url = `${server.url}/api/echo?method=${method}`;
  const signed = await sign(user, provider, { method: 'POST', url, form: { a: '1' } });
  expect(signed.status).toBe(200);
  expect(headerParameters(signed.body.authorization as string).oauth_signature_method).toBe(method);
  if (method === 'PLAINTEXT') {
    // The PLAINTEXT signature is both secrets: allowed only because the provider is not signOnly.
    expect(signed.body.oauth_signature).toBe(`${CONSUMERS[provider].secret}&${issued.tokenSecret}`);
  }
  expect((await send('POST', url, signed.body.authorization as string, [['a', '1']])).status).toBe(200);
});

test('a signOnly provider with PLAINTEXT is refused when the configuration is loaded', async () => {
  await expect(
    startVault({
      redis,
      config: (standard) => {
        (standard.providers as Record<string, unknown>)['tw-bad'] = { type: 'oauth1', consumerKey: 'ck', consumerSecret: 'cs-bad-secret', signOnly: true, signatureMethod: 'PLAINTEXT' };
        return standard;
      },
    }),
  ).rejects.toThrow(/providers\.tw-bad\.signatureMethod: a signOnly provider cannot use PLAINTEXT/);
});

test('refusals: an oauth2 provider 400, no credential 404, without tokens:sign 403, a provider the caller may not use 403', async () => {
  const url = `${server.url}/api/echo`;
  await request(vault.app)
    .put('/tokens/sign-dan/github')
    .set('Authorization', bearer(vault.keys.writer))
    .send({ type: 'oauth2', access_token: 'gh-access-token-sign-dan', expires_in: 3600 });
  const oauth2 = await sign('sign-dan', 'github', { method: 'GET', url });
  expect(oauth2.status).toBe(400);
  expect(oauth2.body.error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('OAuth 1.0a') });

  const missing = await sign('nobody-here', 'tw-hmac', { method: 'GET', url });
  expect(missing.status).toBe(404);
  expect(missing.body.error).toMatchObject({ code: 'not_found' });

  await connect('sign-dan', 'tw-hmac');
  const noScope = await sign('sign-dan', 'tw-hmac', { method: 'GET', url }, vault.keys.writer);
  expect(noScope.status).toBe(403);
  expect(noScope.body.error).toMatchObject({ code: 'forbidden', message: expect.stringContaining('tokens:sign') });

  const otherProvider = await sign('sign-dan', 'tw-hmac', { method: 'GET', url }, GITHUB_SIGNER_KEY);
  expect(otherProvider.status).toBe(403);
  expect(otherProvider.body.error).toMatchObject({ code: 'forbidden' });

  expect((await request(vault.app).post('/tokens/sign-dan/tw-hmac/sign').send({ method: 'GET', url })).status).toBe(401);
});

test.each([
  { what: 'a relative url', body: { method: 'GET', url: '/api/echo' }, path: 'body.url' },
  { what: 'an ftp url', body: { method: 'GET', url: 'ftp://files.example.com/file.txt' }, path: 'body.url' },
  { what: 'no url', body: { method: 'GET' }, path: 'body.url' },
  { what: 'a method with spaces', body: { method: 'GE T', url: 'https://api.example.com/x' }, path: 'body.method' },
  { what: 'a form value that is not a string', body: { method: 'POST', url: 'https://api.example.com/x', form: { count: 1 } }, path: 'body.form.count' },
  { what: 'a form array with a number', body: { method: 'POST', url: 'https://api.example.com/x', form: { ids: ['1', 2] } }, path: 'body.form.ids' },
  { what: 'a timestamp that is not whole seconds', body: { method: 'GET', url: 'https://api.example.com/x', timestamp: '12.5' }, path: 'body.timestamp' },
  { what: 'a nonce with spaces', body: { method: 'GET', url: 'https://api.example.com/x', nonce: 'a b' }, path: 'body.nonce' },
  { what: 'an unknown field', body: { method: 'GET', url: 'https://api.example.com/x', realm: 'Photos' }, path: 'body' },
] as { what: string; body: SignBody; path: string }[])('a body with $what: 400 invalid_request naming $path', async ({ body, path }) => {
  await connect('sign-eve', 'tw-hmac');
  const res = await sign('sign-eve', 'tw-hmac', body);
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe('invalid_request');
  const details = res.body.error.details as { path: string; message: string }[];
  expect(details.map((d) => d.path)).toContain(path);
  if (path === 'body') expect(details.find((d) => d.path === 'body')!.message).toContain('realm');
});

test('oauth_* parameters in the URL or the form are refused (they would be signed twice): 400', async () => {
  await connect('sign-fay', 'tw-hmac');
  const inQuery = await sign('sign-fay', 'tw-hmac', { method: 'GET', url: `${server.url}/api/echo?oauth_token=smuggled` });
  expect(inQuery.status).toBe(400);
  expect(inQuery.body.error.code).toBe('invalid_request');
  const inForm = await sign('sign-fay', 'tw-hmac', { method: 'POST', url: `${server.url}/api/echo`, form: { oauth_callback: 'https://evil.example' } });
  expect(inForm.status).toBe(400);
});

test('every signature is audited as credential.sign (who, which, outcome), and no secret or token reached the logs', async () => {
  const audit = vault.logs.audit().filter((entry) => entry.action === 'credential.sign');
  expect(audit).toContainEqual(expect.objectContaining({ caller: 'signer', user: 'sign-ann', provider: 'tw-hmac', outcome: 'ok', version: expect.any(Number), request_id: expect.any(String) }));
  expect(audit).toContainEqual(expect.objectContaining({ caller: 'signer', user: 'twitter-docs-user', provider: 'twitter-docs', outcome: 'ok' }));
  expect(audit).toContainEqual(expect.objectContaining({ caller: 'signer', user: 'nobody-here', provider: 'tw-hmac', outcome: 'not_found' }));
  expect(audit).toContainEqual(expect.objectContaining({ caller: 'signer', user: 'sign-fay', provider: 'tw-hmac', outcome: 'refused' }));
  // Refused before the credential was looked at: no sign entry for the oauth2 provider or the forbidden caller.
  expect(audit.filter((entry) => entry.provider === 'github' || entry.caller === 'writer' || entry.caller === 'github-signer')).toEqual([]);

  expect(Object.keys(secrets).length).toBeGreaterThan(20);
  expect(secretsIn(vault.logs.text(), secrets)).toEqual([]);
});
