import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { startVault, type TestVault } from '../../helpers/app';
import { dumpRedis } from '../../helpers/checks';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Drives every route, including the failure paths that tend to leak (bad JSON carrying a token,
 * an oversized body, wrong API keys), at LOG_LEVEL=trace, then looks for every secret in every
 * Redis value, every log line and the metrics, in clear and in the usual encodings.
 */
let redis: RedisServer;
let vault: TestVault;
let client: Redis;

const secret = (label: string) => `${label}-${randomBytes(12).toString('hex')}`;
const secrets = {
  accessToken: secret('at'),
  refreshToken: secret('rt'),
  idToken: secret('idt'),
  oauth1Token: secret('o1t'),
  oauth1Secret: secret('o1s'),
  clientSecret: secret('cs'),
  consumerSecret: secret('cons'),
  wrongApiKey: secret('wrongkey'),
  webhookSecret: `whsec_${randomBytes(32).toString('base64')}`,
};

beforeAll(async () => {
  redis = await RedisServer.start();
  client = redis.client();
  vault = await startVault({
    redis,
    logLevel: 'trace',
    webhooks: true,
    config: (standard) => {
      const providers = standard.providers as Record<string, Record<string, unknown>>;
      (providers.github as Record<string, unknown>).clientSecret = secrets.clientSecret;
      (providers.twitter as Record<string, unknown>).consumerSecret = secrets.consumerSecret;
      // Nothing listens on port 1: the deleted google credential waits, sealed, for its
      // revocation, and its token.revoked webhook waits for the subscriber.
      (providers.google as Record<string, unknown>).revocationUrl = 'http://127.0.0.1:1/revoke';
      standard.webhooks = { subscribers: [{ name: 'down', url: 'http://127.0.0.1:1/hooks', secret: secrets.webhookSecret, events: ['*'] }] };
      return standard;
    },
  });
  const writer = vault.auth(vault.keys.writer);
  const oauth2 = {
    type: 'oauth2',
    access_token: secrets.accessToken,
    refresh_token: secrets.refreshToken,
    id_token: secrets.idToken,
    expires_in: 3600,
    scope: 'repo',
    metadata: { team: 'a' },
  };
  expect((await request(vault.app).put('/tokens/leak-check/github').set('Authorization', writer).send(oauth2)).status).toBe(201);
  expect((await request(vault.app).put('/tokens/leak-check/google').set('Authorization', writer).send(oauth2)).status).toBe(201);
  const oauth1 = { type: 'oauth1', oauth_token: secrets.oauth1Token, oauth_token_secret: secrets.oauth1Secret };
  expect((await request(vault.app).put('/tokens/leak-check/twitter').set('Authorization', writer).send(oauth1)).status).toBe(201);
  expect((await request(vault.app).get('/tokens/leak-check/github').set('Authorization', writer)).status).toBe(200);
  expect((await request(vault.app).get('/tokens/leak-check/twitter').set('Authorization', writer)).status).toBe(200);
  expect((await request(vault.app).get('/tokens/leak-check').set('Authorization', writer)).status).toBe(200);
  expect((await request(vault.app).delete('/tokens/leak-check/google').set('Authorization', writer)).status).toBe(204);
  const deadline = Date.now() + 10_000;
  const logged = (msg: string) => vault.logs.entries().some((entry) => entry.msg === msg);
  while (!logged('upstream revocation failed; will retry') || !logged('webhook attempt failed; will retry')) {
    if (Date.now() > deadline) throw new Error('the revocation and the webhook were not attempted');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(await client.zcard(vault.deps.keys.revocations('leak-check'))).toBe(1);
  expect(await client.zcard(vault.deps.keys.deliveries('pending'))).toBe(1);

  // Failure paths.
  const broken = `{"type":"oauth2","access_token":"${secrets.accessToken}",`;
  expect((await request(vault.app).put('/tokens/leak-check/github').set('Authorization', writer).type('json').send(broken)).status).toBe(400);
  const huge = JSON.stringify({ ...oauth2, metadata: { pad: 'x'.repeat(70_000) } });
  expect((await request(vault.app).put('/tokens/leak-check/github').set('Authorization', writer).type('json').send(huge)).status).toBe(413);
  const wrongType = { ...oauth2, type: 'oauth1' };
  expect((await request(vault.app).put('/tokens/leak-check/github').set('Authorization', writer).send(wrongType)).status).toBe(400);
  expect((await request(vault.app).get('/tokens/leak-check/github').set('Authorization', `Bearer ${secrets.wrongApiKey}`)).status).toBe(401);
  expect((await request(vault.app).get('/tokens/leak-check/github').set('Authorization', `Basic ${secrets.wrongApiKey}`)).status).toBe(401);
  // Let the asynchronous log writes land.
  await new Promise((resolve) => setImmediate(resolve));
});

afterAll(async () => {
  client.disconnect();
  await vault.close();
  await redis.stop();
});

function forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  return [value, bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex')];
}

function allSecretValues(): Record<string, string> {
  const keyring = JSON.parse(vault.keyringJson) as { keys: Record<string, string> };
  return {
    ...secrets,
    ...Object.fromEntries(Object.entries(vault.keys).map(([name, key]) => [`apiKey:${name}`, key])),
    ...Object.fromEntries(Object.entries(keyring.keys).map(([id, material]) => [`kek:${id}`, material])),
  };
}

function expectNoSecretsIn(haystack: Buffer | string, where: string): void {
  const text = Buffer.isBuffer(haystack) ? haystack.toString('latin1') : haystack;
  for (const [name, value] of Object.entries(allSecretValues())) {
    for (const form of forms(value)) {
      if (text.includes(form)) throw new Error(`${name} found in ${where}`);
    }
  }
  // Key material is also checked as raw bytes: a KEK must never be written anywhere.
  if (Buffer.isBuffer(haystack)) {
    const keyring = JSON.parse(vault.keyringJson) as { keys: Record<string, string> };
    for (const material of Object.values(keyring.keys)) {
      expect(haystack.includes(Buffer.from(material, 'base64'))).toBe(false);
    }
  }
}

test('Redis holds no token, secret, API key or KEK in any key or value', async () => {
  const { keys, values } = await dumpRedis(client, '');
  expect(keys.some((key) => key.includes(':cred:leak-check:github'))).toBe(true);
  expect(keys.some((key) => key.includes(':cred:leak-check:twitter'))).toBe(true);
  expectNoSecretsIn(values, 'Redis');
});

test('the Redis AOF on disk holds no secret either', async () => {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(redis.dir);
  const aof = Buffer.concat(files.map((file) => readFileSync(file)));
  expect(aof.length).toBeGreaterThan(0);
  expectNoSecretsIn(aof, 'the AOF');
});

test('logs at trace level hold no secret, but do hold the audit trail', () => {
  const text = vault.logs.text();
  expect(text.length).toBeGreaterThan(0);
  expect(vault.logs.entries().some((entry) => entry.level === 10 || entry.level === 20 || entry.level === 30)).toBe(true);
  expectNoSecretsIn(text, 'the logs');
  const audit = vault.logs.audit().map((entry) => `${String(entry.action)} ${String(entry.provider)} ${String(entry.outcome)} ${String(entry.caller)}`);
  expect(audit).toEqual(
    expect.arrayContaining([
      'credential.put github ok writer',
      'credential.put twitter ok writer',
      'credential.reveal github ok writer',
      'credential.reveal twitter ok writer',
      'credential.delete google ok writer',
    ]),
  );
});

test('metrics hold no secret and no user id', async () => {
  const response = await request(vault.app).get('/metrics');
  expect(response.status).toBe(200);
  expectNoSecretsIn(response.text, 'the metrics');
  expect(response.text).not.toContain('leak-check');
  expect(response.text).toContain('route="/tokens/:user/:provider"');
});

test('public views and error bodies never carry a token value', async () => {
  const writer = vault.auth(vault.keys.writer);
  const list = await request(vault.app).get('/tokens/leak-check').set('Authorization', writer);
  const replaced = await request(vault.app)
    .put('/tokens/leak-check/github')
    .set('Authorization', writer)
    .send({ type: 'oauth2', access_token: secrets.accessToken, refresh_token: secrets.refreshToken });
  const broken = await request(vault.app)
    .put('/tokens/leak-check/github')
    .set('Authorization', writer)
    .type('json')
    .send(`{"access_token":"${secrets.accessToken}"`);
  for (const [where, response] of Object.entries({ list, replaced, broken })) expectNoSecretsIn(response.text, `the ${where} response`);
  expect(replaced.status).toBe(200);
});
