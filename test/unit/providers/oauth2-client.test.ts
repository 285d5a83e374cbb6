import { ConfigSecret, type OAuth2ProviderConfig } from '../../../src/config/schema';
import type { ProviderHooks } from '../../../src/providers/hooks';
import { OAuth2Client, retryAfter, type RefreshResult } from '../../../src/providers/oauth2-client';
import { Secret } from '../../../src/secret';
import { ScriptedTokenServer, type ScriptedRequest } from '../../helpers/providers/scripted-token-server';

/**
 * OAuth2Client against a real HTTP token endpoint on loopback (ScriptedTokenServer): what reaches
 * the provider, and how each kind of answer is classified for the refresher.
 */

const CLIENT_ID = 'vault client:1';
const SECRET_A = 'secret A/+%:&=';
const SECRET_B = 'secret-b-0123456789';
const REFRESH_TOKEN = 'rt-unit-5f1d9c0a7b3e4d2c';
const FORM = 'application/x-www-form-urlencoded';

/** Every result produced in this file, checked at the end for leaked secrets. */
const results: RefreshResult[] = [];

let server: ScriptedTokenServer;
beforeAll(async () => {
  server = await ScriptedTokenServer.start();
});
afterAll(async () => {
  await server.stop();
});
beforeEach(() => {
  server.clearRequests();
  expect(server.pending).toBe(0);
});
afterEach(() => {
  // Every scripted answer was used: no call more, no call less than the scenario expects.
  expect(server.pending).toBe(0);
});

function provider(overrides: { clientAuth?: OAuth2ProviderConfig['clientAuth']; secrets?: string[]; tokenUrl?: string } = {}): OAuth2ProviderConfig {
  return {
    type: 'oauth2',
    grant: 'authorization_code',
    clientId: CLIENT_ID,
    clientSecret: (overrides.secrets ?? [SECRET_A]).map((value) => new ConfigSecret(value, 'inline')),
    clientAuth: overrides.clientAuth ?? 'client_secret_basic',
    tokenUrl: overrides.tokenUrl ?? server.url,
    scopes: [],
    scopeSeparator: ' ',
    authorizationParams: {},
    accountIdField: 'sub',
    pkce: true,
    defaultLifetimeSeconds: 3600,
    maxConcurrency: 16,
  };
}

async function refresh(
  options: { clientAuth?: OAuth2ProviderConfig['clientAuth']; secrets?: string[]; tokenUrl?: string; hooks?: ProviderHooks; timeoutMs?: number; now?: number } = {},
): Promise<RefreshResult> {
  const client = new OAuth2Client({ timeoutMs: options.timeoutMs ?? 5000, ...(options.now === undefined ? {} : { now: () => options.now! }) });
  const result = await client.refresh(provider(options), new Secret(REFRESH_TOKEN), options.hooks);
  results.push(result);
  return result;
}

/** The client id and secret a Basic header carries, decoded as RFC 6749 §2.3.1 says. */
function decodeBasic(request: ScriptedRequest): { id: string; secret: string; pair: string } {
  const header = request.headers.authorization ?? '';
  expect(header).toMatch(/^Basic [A-Za-z0-9+/]+=*$/);
  const pair = Buffer.from(header.slice('Basic '.length), 'base64').toString('utf8');
  const [id = '', secret = ''] = pair.split(':');
  const formDecode = (value: string) => decodeURIComponent(value.replace(/\+/g, ' '));
  return { id: formDecode(id), secret: formDecode(secret), pair };
}

const ok = (body: object | string, headers?: Record<string, string>) => ({ status: 200, body, ...(headers ? { headers } : {}) });

describe('the refresh request', () => {
  test('client_secret_basic: form-encoded id and secret in the Basic header, only grant_type and refresh_token in the form', async () => {
    server.respond(ok({ access_token: 'at-1', token_type: 'Bearer', expires_in: 60 }));
    expect((await refresh({ clientAuth: 'client_secret_basic' })).outcome).toBe('ok');

    expect(server.requests).toHaveLength(1);
    const [request] = server.requests;
    expect(request!.method).toBe('POST');
    expect(request!.url).toBe('/token');
    expect(request!.headers['content-type']).toBe(FORM);
    expect(request!.headers.accept).toBe('application/json');
    const basic = decodeBasic(request!);
    // The ':' inside the client id is percent-encoded, so the pair splits unambiguously.
    expect(basic.pair.split(':')).toHaveLength(2);
    expect(basic.pair).toBe('vault+client%3A1:secret+A%2F%2B%25%3A%26%3D');
    expect({ id: basic.id, secret: basic.secret }).toEqual({ id: CLIENT_ID, secret: SECRET_A });
    expect(request!.form).toEqual({ grant_type: 'refresh_token', refresh_token: REFRESH_TOKEN });
  });

  test('client_secret_post: id and secret in the form, no Authorization header', async () => {
    server.respond(ok({ access_token: 'at-2', token_type: 'Bearer' }));
    expect((await refresh({ clientAuth: 'client_secret_post' })).outcome).toBe('ok');

    const [request] = server.requests;
    expect(request!.headers.authorization).toBeUndefined();
    expect(request!.headers['content-type']).toBe(FORM);
    expect(request!.headers.accept).toBe('application/json');
    expect(request!.form).toEqual({ grant_type: 'refresh_token', refresh_token: REFRESH_TOKEN, client_id: CLIENT_ID, client_secret: SECRET_A });
  });
});

describe('successful answers', () => {
  test('a JSON answer: every field is read', async () => {
    server.respond(
      ok({ access_token: 'at-json', refresh_token: 'rt-rotated', expires_in: 3600, scope: 'repo user', token_type: 'Bearer', id_token: 'idt-json' }),
    );
    expect(await refresh()).toEqual({
      outcome: 'ok',
      secretIndex: 0,
      tokens: { accessToken: 'at-json', refreshToken: 'rt-rotated', expiresIn: 3600, scope: 'repo user', tokenType: 'Bearer', idToken: 'idt-json', refreshExpiresIn: null, accountId: null },
    });
  });

  test('a form-encoded answer (GitHub without JSON): read as a form', async () => {
    server.respond(
      ok('access_token=gho_form&scope=repo%2Cgist&token_type=bearer&expires_in=28800&refresh_token=ghr_form', {
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      }),
    );
    expect(await refresh()).toEqual({
      outcome: 'ok',
      secretIndex: 0,
      tokens: { accessToken: 'gho_form', refreshToken: 'ghr_form', expiresIn: 28800, scope: 'repo,gist', tokenType: 'bearer', idToken: null, refreshExpiresIn: null, accountId: null },
    });
  });

  test('a form-encoded answer sent without a content type is still read', async () => {
    server.respond(ok('access_token=at-untyped&token_type=bearer'));
    const result = await refresh();
    expect(result).toMatchObject({ outcome: 'ok', tokens: { accessToken: 'at-untyped', tokenType: 'bearer', expiresIn: null } });
  });

  test.each<[string, unknown, number | null]>([
    ['a number', 3600, 3600],
    ['a numeric string', '7200', 7200],
    ['a numeric string with blanks', ' 45 ', 45],
    ['a fraction (floored)', 59.9, 59],
    ['zero', 0, 0],
    ['missing', undefined, null],
    ['null', null, null],
    ['a word', 'soon', null],
    ['negative', -5, null],
    ['an exponent string', '1e3', null],
    ['an object', { seconds: 60 }, null],
  ])('expires_in as %s → %p', async (_name, expiresIn, expected) => {
    server.respond(ok({ access_token: 'at-exp', token_type: 'Bearer', ...(expiresIn === undefined ? {} : { expires_in: expiresIn }) }));
    const result = await refresh();
    expect(result.outcome).toBe('ok');
    expect(result.outcome === 'ok' && result.tokens.expiresIn).toBe(expected);
  });

  test('no refresh_token, scope or id_token in the answer: null (the caller keeps what it had)', async () => {
    server.respond(ok({ access_token: 'at-min', token_type: 'Bearer', expires_in: 60 }), ok({ access_token: 'at-empty', refresh_token: '', scope: '' }));
    expect(await refresh()).toEqual({
      outcome: 'ok',
      secretIndex: 0,
      tokens: { accessToken: 'at-min', refreshToken: null, expiresIn: 60, scope: null, tokenType: 'Bearer', idToken: null, refreshExpiresIn: null, accountId: null },
    });
    // Empty strings are "not sent", not an empty refresh token.
    expect(await refresh()).toMatchObject({ outcome: 'ok', tokens: { accessToken: 'at-empty', refreshToken: null, scope: null, tokenType: null } });
  });

  test('a changed scope is reported', async () => {
    server.respond(ok({ access_token: 'at-scope', scope: 'read:user', token_type: 'Bearer' }));
    expect(await refresh()).toMatchObject({ outcome: 'ok', tokens: { scope: 'read:user' } });
  });
});

describe('OAuth errors', () => {
  test('400 invalid_grant → invalid_grant, and no other client secret is tried', async () => {
    server.respond({ status: 400, body: { error: 'invalid_grant', error_description: 'grant request is invalid' } });
    expect(await refresh({ secrets: [SECRET_A, SECRET_B] })).toEqual({ outcome: 'invalid_grant', reason: 'invalid_grant' });
    expect(server.requests).toHaveLength(1);
  });

  test('401 invalid_client with the first secret, 200 with the second: ok with secretIndex 1, secrets tried in order', async () => {
    server.respond(
      { status: 401, body: { error: 'invalid_client', error_description: 'client authentication failed' }, headers: { 'www-authenticate': 'Basic realm="x"' } },
      ok({ access_token: 'at-second-secret', token_type: 'Bearer', expires_in: 60 }),
    );
    expect(await refresh({ secrets: [SECRET_A, SECRET_B] })).toMatchObject({ outcome: 'ok', secretIndex: 1, tokens: { accessToken: 'at-second-secret' } });
    expect(server.requests.map((r) => decodeBasic(r).secret)).toEqual([SECRET_A, SECRET_B]);
    expect(server.requests.map((r) => r.form.refresh_token)).toEqual([REFRESH_TOKEN, REFRESH_TOKEN]);
  });

  test('client_secret_post: the second secret is sent in the form after invalid_client', async () => {
    server.respond({ status: 400, body: { error: 'invalid_client' } }, ok({ access_token: 'at-post-second' }));
    expect(await refresh({ clientAuth: 'client_secret_post', secrets: [SECRET_A, SECRET_B] })).toMatchObject({ outcome: 'ok', secretIndex: 1 });
    expect(server.requests.map((r) => r.form.client_secret)).toEqual([SECRET_A, SECRET_B]);
  });

  test('every secret refused → invalid_client, each tried once, in order', async () => {
    server.respond({ status: 401, body: { error: 'invalid_client' } }, { status: 401 }, { status: 400, body: { error: 'invalid_client' } });
    const third = 'secret-c-third';
    const result = await refresh({ secrets: [SECRET_A, SECRET_B, third] });
    expect(result.outcome).toBe('invalid_client');
    expect(server.requests.map((r) => decodeBasic(r).secret)).toEqual([SECRET_A, SECRET_B, third]);
  });

  test('a bare 401 without an OAuth error body counts as invalid_client', async () => {
    server.respond({ status: 401, body: '' });
    expect(await refresh()).toEqual({ outcome: 'invalid_client', reason: 'HTTP 401' });
  });

  test('HTTP 200 with an error body (GitHub style, JSON): classified as an error, not a success', async () => {
    server.respond(ok({ error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' }));
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'bad_refresh_token' });
  });

  test("hooks.errorCode maps GitHub's bad_refresh_token to invalid_grant (JSON and form-encoded answers)", async () => {
    const hooks: ProviderHooks = { errorCode: (code) => (code === 'bad_refresh_token' ? 'invalid_grant' : code) };
    server.respond(
      ok({ error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' }),
      ok('error=bad_refresh_token&error_description=The+refresh+token+passed+is+incorrect+or+expired.', { 'content-type': FORM }),
      ok({ error: 'incorrect_client_credentials' }),
    );
    expect(await refresh({ hooks })).toEqual({ outcome: 'invalid_grant', reason: 'invalid_grant' });
    expect(await refresh({ hooks })).toEqual({ outcome: 'invalid_grant', reason: 'invalid_grant' });
    // Codes the hook does not map pass through unchanged.
    expect(await refresh({ hooks })).toEqual({ outcome: 'error', reason: 'incorrect_client_credentials' });
  });

  test('other OAuth errors → error with the code; a code that is not a plain OAuth code is not echoed', async () => {
    server.respond({ status: 400, body: { error: 'invalid_scope' } }, { status: 400, body: { error: 'Bad <b>thing</b> happened', error_description: 'x' } });
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'invalid_scope' });
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'provider error' });
  });

  test('400 temporarily_unavailable → transient, honouring Retry-After', async () => {
    server.respond({ status: 400, body: { error: 'temporarily_unavailable' }, headers: { 'retry-after': '12' } });
    expect(await refresh()).toEqual({ outcome: 'transient', reason: 'temporarily_unavailable', retryAfterSeconds: 12 });
  });
});

describe('transient failures', () => {
  test('429 with Retry-After in seconds', async () => {
    server.respond({ status: 429, headers: { 'retry-after': '30' }, body: { error: 'slow_down' } });
    expect(await refresh()).toEqual({ outcome: 'transient', reason: 'HTTP 429', retryAfterSeconds: 30 });
  });

  test('429 with Retry-After as an HTTP date', async () => {
    const now = Date.parse('2026-11-23T12:00:00.000Z');
    server.respond({ status: 429, headers: { 'retry-after': 'Mon, 23 Nov 2026 12:02:00 GMT' } });
    expect(await refresh({ now })).toEqual({ outcome: 'transient', reason: 'HTTP 429', retryAfterSeconds: 120 });
  });

  test.each([500, 502, 503, 504])('HTTP %i → transient, no Retry-After', async (status) => {
    server.respond({ status, body: { error: 'server_error' } });
    expect(await refresh()).toEqual({ outcome: 'transient', reason: `HTTP ${status}`, retryAfterSeconds: null });
  });

  test('503 with Retry-After', async () => {
    server.respond({ status: 503, headers: { 'retry-after': '5' }, body: 'down for maintenance' });
    expect(await refresh()).toEqual({ outcome: 'transient', reason: 'HTTP 503', retryAfterSeconds: 5 });
  });

  test('a provider that never answers: transient after timeoutMs, not after the server gives up', async () => {
    server.respond({ status: 200, hang: true });
    const started = Date.now();
    const result = await refresh({ timeoutMs: 200 });
    const took = Date.now() - started;
    expect(result).toMatchObject({ outcome: 'transient', retryAfterSeconds: null });
    // 'timeout' in production. Under jest, fetch's DOMException comes from another realm and fails
    // the client's `instanceof Error`, so it reads 'network error' here; the handling is the same.
    expect(['timeout', 'network error']).toContain(result.outcome === 'transient' ? result.reason : '');
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(2000);
  });

  test('connection refused → transient network error', async () => {
    const closed = await ScriptedTokenServer.start();
    const url = closed.url;
    await closed.stop();
    server.respond(); // nothing reaches the scripted server either
    expect(await refresh({ tokenUrl: url })).toEqual({ outcome: 'transient', reason: 'network error', retryAfterSeconds: null });
  });
});

describe('answers the vault cannot use', () => {
  let elsewhere: ScriptedTokenServer;
  beforeAll(async () => {
    elsewhere = await ScriptedTokenServer.start();
    elsewhere.setDefault(ok({ access_token: 'at-stolen', token_type: 'Bearer' }));
  });
  afterAll(async () => {
    await elsewhere.stop();
  });

  test.each([301, 302, 303, 307, 308])('HTTP %i redirect: not followed (the Location receives nothing) → error', async (status) => {
    elsewhere.clearRequests();
    server.respond({ status, headers: { location: `${elsewhere.origin}/steal` } });
    const result = await refresh({ secrets: [SECRET_A, SECRET_B] });
    expect(result).toEqual({ outcome: 'error', reason: `token endpoint answered a redirect (HTTP ${status}); not followed` });
    expect(server.requests).toHaveLength(1);
    expect(elsewhere.requests).toHaveLength(0);
  });

  test('200 without access_token → error', async () => {
    server.respond(ok({ token_type: 'Bearer', expires_in: 3600, refresh_token: 'rt-orphan' }), ok({ access_token: '', token_type: 'Bearer' }), ok({ access_token: 42 }));
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'answer without access_token' });
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'answer without access_token' });
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'answer without access_token' });
  });

  test('malformed JSON → error, whatever the status', async () => {
    server.respond(
      { status: 200, headers: { 'content-type': 'application/json' }, body: '{"access_token": "at-truncated", ' },
      { status: 200, headers: { 'content-type': 'application/json' }, body: '["at-in-an-array"]' },
      { status: 400, headers: { 'content-type': 'application/json' }, body: '{"error": ' },
    );
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'answer without access_token' });
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'answer without access_token' });
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'HTTP 400' });
  });

  test('an HTML error page → error with the status only', async () => {
    server.respond({ status: 404, headers: { 'content-type': 'text/html' }, body: '<html><body class="x">Not Found</body></html>' });
    expect(await refresh()).toEqual({ outcome: 'error', reason: 'HTTP 404' });
  });
});

describe('retryAfter', () => {
  const now = Date.parse('2026-11-23T12:00:00.000Z');
  test.each<[string | null, number | null]>([
    [null, null],
    ['', null],
    ['0', 0],
    ['120', 120],
    [' 7 ', 7],
    ['Mon, 23 Nov 2026 12:00:30 GMT', 30],
    ['Mon, 23 Nov 2026 11:00:00 GMT', 0],
    ['soon', null],
  ])('%p → %p', (header, expected) => {
    expect(retryAfter(header, now)).toBe(expected);
  });
});

test('no result reason ever contains the refresh token, a client secret or an access token', () => {
  expect(results.length).toBeGreaterThan(30);
  const reasons = results.flatMap((r) => (r.outcome === 'ok' ? [] : [r.reason]));
  expect(reasons.length).toBeGreaterThan(20);
  const text = JSON.stringify(reasons);
  for (const secret of [REFRESH_TOKEN, SECRET_A, SECRET_B, 'secret-c-third', 'rt-orphan', 'at-truncated', 'at-in-an-array', 'The refresh token passed']) {
    expect(text).not.toContain(secret);
  }
  // Reasons are short, fixed descriptions.
  for (const reason of reasons) expect(reason).toMatch(/^[A-Za-z0-9 _();,-]{1,80}$/);
});
