import type { RequestListener } from 'node:http';
import request from 'supertest';
import { buildApp } from '../../../src/app';
import { withHotRoute } from '../../../src/http/hot-route';
import { startVault, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * GET /tokens/:user/:provider is served without express (src/http/hot-route.ts). Every request
 * here goes to express alone and to the hot route in front of express, on one vault: both must
 * answer the same status, headers and body, and the hot route must have taken exactly the
 * requests it claims (the others reach express untouched).
 */

let redis: RedisServer;
let vault: TestVault;
let expressOnly: RequestListener;
let hot: RequestListener;
let delegated: string[];

beforeAll(async () => {
  redis = await RedisServer.start();
  vault = await startVault({ redis });
  const app = buildApp(vault.deps);
  expressOnly = app;
  hot = withHotRoute(vault.deps, (req, res) => {
    delegated.push(`${req.method} ${req.url}`);
    app(req, res);
  });
  const writer = { Authorization: vault.auth(vault.keys.writer) };
  const put = (path: string, body: object) => request(vault.app).put(path).set(writer).send(body).expect((res) => expect(res.status).toBe(201));
  await put('/tokens/alice/github', { type: 'oauth2', access_token: 'gho_alice', refresh_token: 'ghr_alice', expires_in: 3600, scope: 'repo', account_id: '42' });
  await put('/tokens/a%40b.example/github', { type: 'oauth2', access_token: 'gho_at', refresh_token: 'ghr_at', expires_in: 3600 });
  await put('/tokens/alice/twitter', { type: 'oauth1', oauth_token: 'tw_token', oauth_token_secret: 'tw_secret' });
  await put('/tokens/alice/twitter-signonly', { type: 'oauth1', oauth_token: 'tw2_token', oauth_token_secret: 'tw2_secret' });
  await put('/tokens/expired/google', { type: 'oauth2', access_token: 'ya29_expired', expires_in: 0 });
});
afterAll(async () => {
  await vault.close();
  await redis.stop();
});
beforeEach(() => {
  delegated = [];
});

type Key = 'reader' | 'githubOnly' | 'noScopes';
interface Case {
  name: string;
  method?: 'GET' | 'HEAD';
  path: string;
  key?: Key | null;
  authorization?: string;
  headers?: Record<string, string>;
  status: number;
  /** false: the hot route hands the request to express. */
  taken: boolean;
}

const CASES: Case[] = [
  { name: 'an OAuth 2.0 token', path: '/tokens/alice/github', status: 200, taken: true },
  { name: 'min_ttl', path: '/tokens/alice/github?min_ttl=60', status: 200, taken: true },
  { name: 'an empty query', path: '/tokens/alice/github?', status: 200, taken: true },
  { name: 'a percent-encoded user', path: '/tokens/a%40b.example/github', status: 200, taken: true },
  { name: 'an OAuth 1.0a token with its secret', path: '/tokens/alice/twitter', status: 200, taken: true },
  { name: 'a sign-only OAuth 1.0a token without its secret', path: '/tokens/alice/twitter-signonly', status: 200, taken: true },
  { name: 'If-None-Match of the current version (no 304)', path: '/tokens/alice/github', headers: { 'If-None-Match': '"1"' }, status: 200, taken: true },
  { name: 'no credential', path: '/tokens/nobody/github', status: 404, taken: true },
  { name: 'a provider that is not configured', path: '/tokens/alice/nope', status: 404, taken: true },
  { name: 'an expired token without a refresh token', path: '/tokens/expired/google', status: 409, taken: true },
  { name: 'a provider the caller may not use', path: '/tokens/alice/google', key: 'githubOnly', status: 403, taken: true },
  { name: 'a caller without tokens:read', path: '/tokens/alice/github', key: 'noScopes', status: 403, taken: true },
  { name: 'no Authorization', path: '/tokens/alice/github', key: null, status: 401, taken: true },
  { name: 'an unknown key', path: '/tokens/alice/github', key: null, authorization: 'Bearer tv_not_a_key', status: 401, taken: true },
  { name: 'not a bearer', path: '/tokens/alice/github', key: null, authorization: 'Basic YTpi', status: 401, taken: true },
  { name: 'a user id the schema refuses', path: '/tokens/a%20b/github', status: 400, taken: true },
  { name: 'a provider id the schema refuses', path: '/tokens/alice/GitHub', status: 400, taken: true },
  { name: 'min_ttl not a number', path: '/tokens/alice/github?min_ttl=soon', status: 400, taken: true },
  { name: 'min_ttl twice', path: '/tokens/alice/github?min_ttl=1&min_ttl=2', status: 400, taken: true },
  { name: 'an unknown query parameter', path: '/tokens/alice/github?access_token=x', status: 400, taken: true },
  { name: 'malformed percent-encoding', path: '/tokens/%E0%A4%A/github', status: 400, taken: false },
  { name: 'the app token route', path: '/tokens/_app/github', status: 400, taken: false },
  { name: 'an encoded underscore', path: '/tokens/%5Fapp/github', status: 400, taken: false },
  { name: 'a trailing slash', path: '/tokens/alice/github/', status: 200, taken: false },
  { name: 'other letter case', path: '/TOKENS/alice/github', status: 200, taken: false },
  { name: 'HEAD', method: 'HEAD', path: '/tokens/alice/github', status: 200, taken: false },
  { name: 'a longer path', path: '/tokens/alice/github/refresh', status: 404, taken: false },
];

/** Everything but what differs by design between two answers: the request id and the date. */
function observed(res: request.Response) {
  const { 'x-request-id': id, date: _date, ...headers } = res.headers as Record<string, string>;
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  return { status: res.status, headers, body: res.text };
}

function send(handler: RequestListener, spec: Case): request.Test {
  const agent = request(handler);
  const req = spec.method === 'HEAD' ? agent.head(spec.path) : agent.get(spec.path);
  const authorization = spec.authorization ?? (spec.key === null ? undefined : vault.auth(vault.keys[spec.key ?? 'reader']));
  if (authorization !== undefined) req.set('Authorization', authorization);
  return req.set(spec.headers ?? {});
}

describe.each(CASES)('$name: $path', (spec) => {
  test(`answers ${spec.status} exactly as express does, ${spec.taken ? 'on the hot route' : 'through express'}`, async () => {
    const viaExpress = observed(await send(expressOnly, spec));
    const viaHot = observed(await send(hot, spec));
    expect(viaHot).toEqual(viaExpress);
    expect(viaHot.status).toBe(spec.status);
    expect(delegated).toEqual(spec.taken ? [] : [`${spec.method ?? 'GET'} ${spec.path}`]);
  });
});

test('the hot route observes its requests as express does: request line, audit entry and latency histogram by route template', async () => {
  const res = await send(hot, { name: 'ok', path: '/tokens/alice/github?min_ttl=60', status: 200, taken: true }).set('X-Request-Id', 'hot-route-observed');
  expect(res.status).toBe(200);
  expect(delegated).toEqual([]);
  const requestLines = vault.logs.entries().filter((entry) => entry.reqId === 'hot-route-observed' && entry.msg === 'request completed');
  expect(requestLines).toEqual([expect.objectContaining({ req: expect.objectContaining({ method: 'GET', url: '/tokens/alice/github?min_ttl=60' }), res: { statusCode: 200 } })]);
  const audit = vault.logs.audit().filter((entry) => entry.request_id === 'hot-route-observed');
  expect(audit).toEqual([expect.objectContaining({ action: 'credential.reveal', caller: 'reader', user: 'alice', provider: 'github', outcome: 'ok' })]);
  const metrics = await vault.deps.metrics.registry.metrics();
  expect(metrics).toMatch(/token_vault_http_request_duration_seconds_count\{method="GET",route="\/tokens\/:user\/:provider",status="200"\} [1-9]/);
});
