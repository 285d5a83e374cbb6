import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { startVault, type TestVault } from '../../helpers/app';
import { secretsIn } from '../../helpers/checks';
import { RedisServer } from '../../helpers/redis-server';

/**
 * GET /providers (DESIGN §4): any authenticated caller learns which configured providers it may
 * use and what each can do — flows, preset, scopes, grant, signature method — and nothing it
 * could misuse: no client id, no secret, no consumer key, no URL.
 */

const LIMITED_KEY = `tv_test_limited_${randomBytes(16).toString('hex')}`;
const ORDER_KEY = `tv_test_order_${randomBytes(16).toString('hex')}`;

/** Everything in the configuration a caller must not learn from this endpoint. */
const HIDDEN = {
  githubClientId: 'gh-preset-client-id-5a1f',
  githubClientSecret: 'gh-preset-client-secret-2c7e',
  githubWebhookSecret: 'gh-webhook-secret-value-8d3b',
  acmeClientId: 'acme-client-id-7e4a',
  acmeClientSecrets: 'acme-client-secret-old-1b9c',
  acmeClientSecretsNew: 'acme-client-secret-new-6f0d',
  machineClientId: 'machine-client-id-3a8e',
  machineClientSecret: 'machine-client-secret-9c2f',
  legacyConsumerKey: 'legacy-consumer-key-4d6b',
  legacyConsumerSecret: 'legacy-consumer-secret-0a5e',
  signonlyConsumerKey: 'signonly-consumer-key-2f8c',
  signonlyConsumerSecret: 'signonly-consumer-secret-7b3d',
  standardGithubSecret: 'gh-client-secret-value',
  standardTwitterConsumer: 'tw-consumer',
  standardTwitterSecret: 'tw-consumer-secret-value',
};

let redis: RedisServer;
let vault: TestVault;

beforeAll(async () => {
  redis = await RedisServer.start();
  vault = await startVault({
    redis,
    config: (standard) => {
      const providers = standard.providers as Record<string, unknown>;
      providers.github = {
        preset: 'github',
        clientId: HIDDEN.githubClientId,
        clientSecret: HIDDEN.githubClientSecret,
        inboundWebhook: { secret: HIDDEN.githubWebhookSecret },
      };
      providers.acme = {
        type: 'oauth2',
        clientId: HIDDEN.acmeClientId,
        clientSecret: [HIDDEN.acmeClientSecrets, HIDDEN.acmeClientSecretsNew],
        tokenUrl: 'https://auth.acme-corp.test/oauth/token',
        authorizationUrl: 'https://auth.acme-corp.test/oauth/authorize',
        deviceAuthorizationUrl: 'https://auth.acme-corp.test/oauth/device',
        revocationUrl: 'https://auth.acme-corp.test/oauth/revoke',
        userinfoUrl: 'https://api.acme-corp.test/me',
        scopes: ['read', 'write'],
      };
      providers.machine = {
        type: 'oauth2',
        grant: 'client_credentials',
        clientId: HIDDEN.machineClientId,
        clientSecret: HIDDEN.machineClientSecret,
        tokenUrl: 'https://machine.acme-corp.test/token',
        scopes: ['api:read'],
      };
      providers.legacy = {
        type: 'oauth1',
        consumerKey: HIDDEN.legacyConsumerKey,
        consumerSecret: HIDDEN.legacyConsumerSecret,
        requestTokenUrl: 'https://legacy.acme-corp.test/oauth/request_token',
        authorizeUrl: 'https://legacy.acme-corp.test/oauth/authorize',
        accessTokenUrl: 'https://legacy.acme-corp.test/oauth/access_token',
      };
      providers['legacy-signonly'] = {
        type: 'oauth1',
        consumerKey: HIDDEN.signonlyConsumerKey,
        consumerSecret: HIDDEN.signonlyConsumerSecret,
        signatureMethod: 'HMAC-SHA256',
        signOnly: true,
      };
      // Ids whose order differs between byte order and a locale's collation ("_" < "-" < digits there).
      for (const id of ['order-a', 'order_b', 'order2']) {
        providers[id] = { type: 'oauth2', clientId: `${id}-client`, clientSecret: `${id}-secret-value`, tokenUrl: `https://${id.replace('_', '-')}.acme-corp.test/token` };
      }
      (standard.callers as unknown[]).push(
        // Listed out of order on purpose.
        { name: 'limited', key: LIMITED_KEY, scopes: ['tokens:read'], providers: ['machine', 'legacy', 'github', 'acme'] },
        { name: 'order', key: ORDER_KEY, scopes: ['tokens:read'], providers: ['order2', 'order_b', 'order-a'] },
      );
      return standard;
    },
  });
});

afterAll(async () => {
  await vault?.close();
  await redis?.stop();
});

const list = (key?: string) => {
  const req = request(vault.app).get('/providers');
  return key === undefined ? req : req.set('Authorization', `Bearer ${key}`);
};

const ids = (body: { providers: { id: string }[] }) => body.providers.map((p) => p.id);

test("a caller sees exactly its own providers, sorted, each with its flows, preset, scopes, grant and revocation — and nothing else", async () => {
  const res = await list(LIMITED_KEY);
  expect(res.status).toBe(200);
  expect(res.body).toEqual({
    providers: [
      {
        id: 'acme',
        type: 'oauth2',
        preset: null,
        inbound_webhook: false,
        grant: 'authorization_code',
        flows: ['authorization_code', 'device'],
        scopes: ['read', 'write'],
        revocation: true,
      },
      {
        id: 'github',
        type: 'oauth2',
        preset: { id: 'github', name: 'GitHub' },
        inbound_webhook: true,
        grant: 'authorization_code',
        flows: ['authorization_code', 'device'],
        scopes: [],
        revocation: false,
      },
      {
        id: 'legacy',
        type: 'oauth1',
        preset: null,
        inbound_webhook: false,
        signature_method: 'HMAC-SHA1',
        sign_only: false,
        flows: ['oauth1'],
        revocation: false,
      },
      {
        id: 'machine',
        type: 'oauth2',
        preset: null,
        inbound_webhook: false,
        grant: 'client_credentials',
        flows: ['client_credentials'],
        scopes: ['api:read'],
        revocation: false,
      },
    ],
  });
});

test('a caller with every provider sees all of them; an oauth1 provider without connect URLs has no flows; signOnly is shown', async () => {
  const res = await list(vault.keys.reader);
  expect(res.status).toBe(200);
  const configured = [...vault.deps.providers.keys()];
  expect([...ids(res.body)].sort()).toEqual([...configured].sort());
  expect(res.body.providers).toContainEqual({
    id: 'legacy-signonly',
    type: 'oauth1',
    preset: null,
    inbound_webhook: false,
    signature_method: 'HMAC-SHA256',
    sign_only: true,
    flows: [],
    revocation: false,
  });
  // An oauth2 provider with a token URL only: no connect flow the vault can run.
  expect(res.body.providers).toContainEqual(expect.objectContaining({ id: 'google', grant: 'authorization_code', flows: [] }));
});

test('no client id, client secret, consumer key or secret, webhook secret or URL anywhere in any answer', async () => {
  for (const key of [LIMITED_KEY, vault.keys.reader, vault.keys.admin]) {
    const text = (await list(key)).text;
    expect(secretsIn(text, HIDDEN)).toEqual([]);
    expect(text).not.toMatch(/https?:|:\/\/|acme-corp|github\.com|Url"/i);
    expect(text).not.toMatch(/client_?id|client_?secret|consumer_?(key|secret)|private_?key/i);
  }
});

test('any authenticated caller may list (no particular scope), even one with only the admin scope', async () => {
  const res = await list(vault.keys.noScopes);
  expect(res.status).toBe(200);
  expect(res.body.providers.length).toBe(vault.deps.providers.size);
});

test('without a key, or with an unknown one: 401, and no provider is named', async () => {
  const none = await list();
  expect(none.status).toBe(401);
  expect(none.headers['www-authenticate']).toBe('Bearer realm="token-vault"');
  expect(none.body.error).toMatchObject({ code: 'unauthorized' });
  expect(none.text).not.toContain('acme');

  const unknown = await list(`tv_test_unknown_${randomBytes(8).toString('hex')}`);
  expect(unknown.status).toBe(401);
  expect(unknown.text).not.toContain('acme');
});

test('sorted by id in byte order, whatever the host locale: order-a, order2, order_b', async () => {
  const res = await list(ORDER_KEY);
  expect(res.status).toBe(200);
  // Byte order is what any client's plain sort gives; a locale collation puts "_" before "-" before digits,
  // and under some locales reorders letters too (lt: "y" before "j"; da: "aa" after "z").
  expect(ids(res.body)).toEqual(['order-a', 'order2', 'order_b']);
});
