import type { ClientRequest } from 'node:http';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { startVault, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Every error code of DESIGN §4 in its one shape, { error: { code, message, details? } }, and the
 * headers every response carries (Cache-Control: no-store, X-Request-Id).
 */

let redis: RedisServer;
let client: Redis;
let vault: TestVault;
beforeAll(async () => {
  redis = await RedisServer.start();
  client = redis.client();
  vault = await startVault({ redis });
});
afterAll(async () => {
  await vault.close();
  client.disconnect();
  await redis.stop();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const oauth2 = (token: string) => ({ type: 'oauth2', access_token: token });
const as = (key: string) => ({ Authorization: vault.auth(key) });

interface ErrorBody {
  code: string;
  message: string;
  details?: { path: string; message: string }[];
}

/** The DESIGN §4 error shape: exactly { error: { code, message, details? } }, as JSON, not cacheable. */
function expectError(res: request.Response, status: number, code: string): ErrorBody {
  expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(['code', 'details', 'message']).toEqual(expect.arrayContaining(Object.keys(res.body.error)));
  expect(res.body.error.message).toEqual(expect.any(String));
  expect(res.body.error.message).not.toBe('');
  if ('details' in res.body.error) {
    expect(res.body.error.details).toEqual(expect.any(Array));
    for (const detail of res.body.error.details) expect(detail).toEqual({ path: expect.any(String), message: expect.any(String) });
  }
  return res.body.error;
}

/** The Content-Type the request went out with (supertest keeps the ClientRequest on the response). */
function sentContentType(res: request.Response): unknown {
  return (res as unknown as { req: ClientRequest }).req.getHeader('content-type');
}

async function store(user: string, provider: string, body: object): Promise<request.Response> {
  const res = await request(vault.app).put(`/tokens/${encodeURIComponent(user)}/${provider}`).set(as(vault.keys.writer)).send(body);
  expect(res.status).toBe(201);
  return res;
}

describe('invalid_request (400)', () => {
  test.each([
    ['a leading underscore', '_u1'],
    ['a space and !', 'bad id!'],
    ['an encoded slash', 'a/b'],
    ['a non-ASCII letter', 'jürgen'],
    ['257 characters', 'u'.repeat(257)],
  ])('a user id with %s is refused at params.user', async (_what, user) => {
    const res = await request(vault.app).get(`/tokens/${encodeURIComponent(user)}/github`).set(as(vault.keys.reader));
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([expect.objectContaining({ path: 'params.user' })]);
  });

  test('the reserved _app is not a user: /tokens/_app/github is the app-token route, and github has no app token', async () => {
    const res = await request(vault.app).get('/tokens/_app/github').set(as(vault.keys.reader));
    expect(expectError(res, 400, 'invalid_request').message).toMatch(/not a client_credentials provider/);
    const put = await request(vault.app).put('/tokens/_app/github').set(as(vault.keys.writer)).send({ type: 'oauth2', access_token: 'x' });
    expect(expectError(put, 400, 'invalid_request').details).toEqual([expect.objectContaining({ path: 'params.user' })]);
  });

  test('a user id of 256 characters is accepted', async () => {
    const user = 'v'.repeat(256);
    await store(user, 'github', oauth2('at-long-user'));
    const res = await request(vault.app).get(`/tokens/${user}/github`).set(as(vault.keys.reader));
    expect(res.status).toBe(200);
    expect(res.body.user).toBe(user);
  });

  test('a bad user id is refused on every token route', async () => {
    const bad = encodeURIComponent('bad id!');
    const writer = as(vault.keys.writer);
    const answers = await Promise.all([
      request(vault.app).put(`/tokens/${bad}/github`).set(writer).send(oauth2('at-bad-user')),
      request(vault.app).delete(`/tokens/${bad}/github`).set(writer),
      request(vault.app).get(`/tokens/${bad}`).set(writer),
      request(vault.app).delete(`/tokens/${bad}`).set(writer),
    ]);
    for (const res of answers) {
      expect(expectError(res, 400, 'invalid_request').details).toEqual([expect.objectContaining({ path: 'params.user' })]);
    }
  });

  test.each(['GitHub', '-github', 'git.hub', 'g'.repeat(65)])('a provider id %p is refused at params.provider', async (provider) => {
    const res = await request(vault.app).get(`/tokens/err-provider/${encodeURIComponent(provider)}`).set(as(vault.keys.reader));
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([expect.objectContaining({ path: 'params.provider' })]);
  });

  test('a body without access_token is refused at body.access_token', async () => {
    const res = await request(vault.app).put('/tokens/err-no-access-token/github').set(as(vault.keys.writer)).send({ type: 'oauth2', expires_in: 60 });
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toEqual([expect.objectContaining({ path: 'body.access_token' })]);
  });

  test('every invalid field is listed, each with its path', async () => {
    const res = await request(vault.app)
      .put('/tokens/err-many/twitter')
      .set(as(vault.keys.writer))
      .send({ type: 'oauth1', oauth_token: '', account_id: 7 });
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details?.map((d) => d.path).sort()).toEqual(['body.account_id', 'body.oauth_token', 'body.oauth_token_secret']);
  });

  test('a body with an unknown type is refused', async () => {
    const res = await request(vault.app).put('/tokens/err-type/github').set(as(vault.keys.writer)).send({ type: 'saml', access_token: 'x' });
    expectError(res, 400, 'invalid_request');
  });

  test('a PUT without a body is refused', async () => {
    const res = await request(vault.app).put('/tokens/err-no-body/github').set(as(vault.keys.writer));
    expectError(res, 400, 'invalid_request');
  });

  test('malformed JSON is refused without echoing the body, in the answer or the logs', async () => {
    const res = await request(vault.app)
      .put('/tokens/err-bad-json/github')
      .set(as(vault.keys.writer))
      .set('Content-Type', 'application/json')
      .send('{"type":"oauth2","access_token":"at-leaked-by-parse-error"');
    const error = expectError(res, 400, 'invalid_request');
    expect(error.details).toBeUndefined();
    expect(res.text).not.toContain('at-leaked-by-parse-error');
    expect(vault.logs.text()).not.toContain('at-leaked-by-parse-error');
  });

  test('a JSON body that is not an object is refused', async () => {
    const res = await request(vault.app).put('/tokens/err-json-string/github').set(as(vault.keys.writer)).set('Content-Type', 'application/json').send('"at-string"');
    expectError(res, 400, 'invalid_request');
  });

  test('malformed percent-encoding in the path is refused', async () => {
    const res = await request(vault.app).get('/tokens/%E0%A4%A/github').set(as(vault.keys.reader));
    expectError(res, 400, 'invalid_request');
  });
});

describe('unauthorized (401)', () => {
  test.each([
    ['no Authorization header', undefined],
    ['the Basic scheme', `Basic ${Buffer.from('admin:password').toString('base64')}`],
    ['an empty Bearer', 'Bearer '],
    ['an unknown key', 'Bearer tv_test_nobody_0123456789abcdef'],
  ])('a request with %s is refused with WWW-Authenticate', async (_what, authorization) => {
    const call = request(vault.app).get('/tokens/err-unauthorized/github');
    const res = await (authorization === undefined ? call : call.set('Authorization', authorization));
    const error = expectError(res, 401, 'unauthorized');
    expect(error.details).toBeUndefined();
    expect(res.headers['www-authenticate']).toBe('Bearer realm="token-vault"');
  });

  test('a valid key under the Basic scheme is refused', async () => {
    const res = await request(vault.app).get('/tokens/err-unauthorized/github').set('Authorization', `Basic ${vault.keys.reader}`);
    expectError(res, 401, 'unauthorized');
  });

  test('authentication comes before input validation', async () => {
    const res = await request(vault.app).get(`/tokens/${encodeURIComponent('bad id!')}/GitHub`);
    expectError(res, 401, 'unauthorized');
  });
});

describe('forbidden (403)', () => {
  test('a reader may not PUT', async () => {
    const res = await request(vault.app).put('/tokens/err-reader-put/github').set(as(vault.keys.reader)).send(oauth2('at-reader'));
    expect(expectError(res, 403, 'forbidden').message).toContain('tokens:write');
    expect((await request(vault.app).get('/tokens/err-reader-put/github').set(as(vault.keys.reader))).status).toBe(404);
  });

  test('a caller with only the admin scope may not GET a token', async () => {
    await store('err-admin-only', 'github', oauth2('at-admin-only'));
    const res = await request(vault.app).get('/tokens/err-admin-only/github').set(as(vault.keys.noScopes));
    expect(expectError(res, 403, 'forbidden').message).toContain('tokens:read');
    expect(res.text).not.toContain('at-admin-only');
  });

  test('a github-only caller may not use google', async () => {
    await store('err-github-only', 'google', oauth2('at-google-forbidden'));
    const res = await request(vault.app).get('/tokens/err-github-only/google').set(as(vault.keys.githubOnly));
    expect(expectError(res, 403, 'forbidden').message).toContain('google');
    expect(res.text).not.toContain('at-google-forbidden');
  });
});

describe('not_found (404)', () => {
  test('an unknown provider is not found for a caller allowed every provider', async () => {
    const res = await request(vault.app).get('/tokens/err-unknown-provider/gitlab').set(as(vault.keys.reader));
    expect(expectError(res, 404, 'not_found').message).toContain('gitlab');
  });

  test('a credential that was never stored is not found', async () => {
    expectError(await request(vault.app).get('/tokens/err-no-credential/github').set(as(vault.keys.reader)), 404, 'not_found');
  });

  test.each([
    ['GET', '/nope'],
    ['GET', '/tokens/a/b/c'],
    ['POST', '/tokens/err-route/github'],
    ['GET', '/tokens'],
  ])('%s %s is not a route', async (method, path) => {
    const res = await request(vault.app)[method === 'POST' ? 'post' : 'get'](path).set(as(vault.keys.admin));
    expectError(res, 404, 'not_found');
  });
});

describe('payload_too_large (413) and unsupported_media_type (415)', () => {
  test('a body over 64 KB is refused with 413', async () => {
    const body = JSON.stringify({ type: 'oauth2', access_token: 'x'.repeat(65 * 1024) });
    const res = await request(vault.app).put('/tokens/err-too-large/github').set(as(vault.keys.writer)).set('Content-Type', 'application/json').send(body);
    expectError(res, 413, 'payload_too_large');
    expect(res.text).not.toContain('xxxxxxxx');
  });

  test.each([
    ['text/plain', 'type=oauth2'],
    ['application/x-www-form-urlencoded', 'type=oauth2&access_token=at'],
    ['application/json; charset=latin1', JSON.stringify(oauth2('at-latin1'))],
  ])('a PUT body of type %s is refused with 415', async (type, body) => {
    const res = await request(vault.app).put('/tokens/err-media-type/github').set(as(vault.keys.writer)).set('Content-Type', type).send(body);
    expectError(res, 415, 'unsupported_media_type');
    expect((await request(vault.app).get('/tokens/err-media-type/github').set(as(vault.keys.reader))).status).toBe(404);
  });

  test('a JSON body with a charset parameter is accepted', async () => {
    const res = await request(vault.app)
      .put('/tokens/err-charset/github')
      .set(as(vault.keys.writer))
      .set('Content-Type', 'application/json; charset=utf-8')
      .send(JSON.stringify(oauth2('at-charset')));
    expect(res.status).toBe(201);
  });

  test('GET and DELETE without a body need no Content-Type', async () => {
    await store('err-no-content-type', 'github', oauth2('at-no-content-type'));
    const read = await request(vault.app).get('/tokens/err-no-content-type/github').set(as(vault.keys.reader));
    expect(read.status).toBe(200);
    expect(sentContentType(read)).toBeUndefined();
    const deleted = await request(vault.app).delete('/tokens/err-no-content-type/github').set(as(vault.keys.writer));
    expect(sentContentType(deleted)).toBeUndefined();
    expect(deleted.status).toBe(204);
  });
});

describe('credential_unreadable (500)', () => {
  test('a record copied onto another user fails closed, without leaking, and is counted as tampered', async () => {
    await store('err-copy-victim', 'github', { ...oauth2('at-copy-victim-secret'), refresh_token: 'rt-copy-victim-secret', expires_in: 3600 });
    await store('err-copy-target', 'github', { ...oauth2('at-copy-target'), refresh_token: 'rt-copy-target', expires_in: 3600 });
    const keys = vault.deps.keys;
    const victim = await client.hgetallBuffer(keys.credential('err-copy-victim', 'github'));
    expect(Object.keys(victim)).toContain('blob');
    await client.hset(keys.credential('err-copy-target', 'github'), ...Object.entries(victim).flat());

    const res = await request(vault.app).get('/tokens/err-copy-target/github').set(as(vault.keys.reader));

    const error = expectError(res, 500, 'credential_unreadable');
    expect(error.details).toBeUndefined();
    for (const secret of ['at-copy-victim-secret', 'rt-copy-victim-secret', 'at-copy-target']) {
      expect(res.text).not.toContain(secret);
      expect(vault.logs.text()).not.toContain(secret);
    }
    const metrics = await request(vault.app).get('/metrics');
    expect(metrics.text).toMatch(/^token_vault_decrypt_failures_total\{reason="tampered"\} 1$/m);
    // The victim's own record still opens where it belongs.
    const own = await request(vault.app).get('/tokens/err-copy-victim/github').set(as(vault.keys.reader));
    expect(own.body.access_token).toBe('at-copy-victim-secret');
  });
});

describe('headers on every response', () => {
  const calls: [string, () => request.Test][] = [
    ['a stored token', () => request(vault.app).get('/tokens/hdr-user/github').set(as(vault.keys.reader))],
    ['a list', () => request(vault.app).get('/tokens/hdr-user').set(as(vault.keys.reader))],
    ['a PUT', () => request(vault.app).put('/tokens/hdr-user/google').set(as(vault.keys.writer)).send(oauth2('at-hdr-google'))],
    ['a DELETE', () => request(vault.app).delete('/tokens/hdr-user/google').set(as(vault.keys.writer))],
    ['a 400', () => request(vault.app).get('/tokens/_app/github').set(as(vault.keys.reader))],
    ['a 401', () => request(vault.app).get('/tokens/hdr-user/github')],
    ['a 404 route', () => request(vault.app).get('/nope')],
    ['a 413', () => request(vault.app).put('/tokens/hdr-user/github').set(as(vault.keys.writer)).send({ big: 'x'.repeat(70_000) })],
    ['healthz', () => request(vault.app).get('/healthz')],
    ['metrics', () => request(vault.app).get('/metrics')],
  ];

  beforeAll(async () => {
    await store('hdr-user', 'github', oauth2('at-hdr'));
  });

  test.each(calls)('%s carries Cache-Control: no-store', async (_what, call) => {
    const res = await call();
    expect(res.headers['cache-control']).toBe('no-store');
  });

  test.each(calls)('%s echoes a well-formed X-Request-Id', async (_what, call) => {
    const res = await call().set('X-Request-Id', 'caller-req.42:abc_DEF-9');
    expect(res.headers['x-request-id']).toBe('caller-req.42:abc_DEF-9');
  });

  test.each(calls)('%s gets a generated X-Request-Id when the caller sends none', async (_what, call) => {
    const res = await call();
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  test.each([
    ['with a space', 'bad id'],
    ['with a slash', 'a/b'],
    ['of 129 characters', 'r'.repeat(129)],
    ['empty', ''],
  ])('an X-Request-Id %s is replaced by a generated one', async (_what, id) => {
    const res = await request(vault.app).get('/tokens/hdr-user/github').set(as(vault.keys.reader)).set('X-Request-Id', id);
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  test('the request id is the one recorded in the audit entry', async () => {
    await request(vault.app).get('/tokens/hdr-user/github').set(as(vault.keys.reader)).set('X-Request-Id', 'audit-trace-1');
    expect(vault.logs.audit()).toContainEqual(expect.objectContaining({ action: 'credential.reveal', user: 'hdr-user', request_id: 'audit-trace-1' }));
  });
});
