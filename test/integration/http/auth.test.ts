import request from 'supertest';
import { startVault, type CallerKeys, type TestVault } from '../../helpers/app';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Caller authentication and authorization (DESIGN §4): API keys, scopes, provider allowlists, the
 * per-address limit on failed authentications, and the probes that need no key.
 */

let redis: RedisServer;
let vault: TestVault;
beforeAll(async () => {
  redis = await RedisServer.start();
  vault = await startVault({ redis });
});
afterAll(async () => {
  await vault.close();
  await redis.stop();
});

/** A vault of its own: the failure limiter and the metrics start from zero. */
async function withOwnVault(run: (own: TestVault) => Promise<void>): Promise<void> {
  const own = await startVault({ redis });
  try {
    await run(own);
  } finally {
    await own.close();
  }
}

function expectError(res: request.Response, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(res.body.error.message).toEqual(expect.any(String));
}

type CallerName = 'admin' | 'writer' | 'reader' | 'githubOnly' | 'noScopes';
type Operation = 'get github' | 'get google' | 'list' | 'put github' | 'put google' | 'delete github' | 'delete google' | 'delete all';

const OPERATIONS: Operation[] = ['get github', 'get google', 'list', 'put github', 'put google', 'delete github', 'delete google', 'delete all'];

/** What each standard caller gets for each operation on a user holding github and google credentials. */
const EXPECTED: Record<CallerName, Record<Operation, number>> = {
  admin: { 'get github': 200, 'get google': 200, list: 200, 'put github': 200, 'put google': 200, 'delete github': 204, 'delete google': 204, 'delete all': 200 },
  writer: { 'get github': 200, 'get google': 200, list: 200, 'put github': 200, 'put google': 200, 'delete github': 204, 'delete google': 204, 'delete all': 200 },
  reader: { 'get github': 200, 'get google': 200, list: 200, 'put github': 403, 'put google': 403, 'delete github': 403, 'delete google': 403, 'delete all': 403 },
  githubOnly: { 'get github': 200, 'get google': 403, list: 200, 'put github': 200, 'put google': 403, 'delete github': 204, 'delete google': 403, 'delete all': 200 },
  noScopes: { 'get github': 403, 'get google': 403, list: 403, 'put github': 403, 'put google': 403, 'delete github': 403, 'delete google': 403, 'delete all': 403 },
};

/** The providers each caller sees in a list, and deletes with DELETE /tokens/:user. */
const VISIBLE: Partial<Record<CallerName, string[]>> = { admin: ['github', 'google'], writer: ['github', 'google'], reader: ['github', 'google'], githubOnly: ['github'] };

function call(operation: Operation, user: string, key: string): request.Test {
  const [verb, provider] = operation.split(' ') as [string, string];
  const auth = { Authorization: vault.auth(key) };
  const one = `/tokens/${user}/${provider}`;
  switch (verb) {
    case 'get':
      return request(vault.app).get(one).set(auth);
    case 'list':
      return request(vault.app).get(`/tokens/${user}`).set(auth);
    case 'put':
      return request(vault.app).put(one).set(auth).send({ type: 'oauth2', access_token: `at-new-${user}` });
    default:
      return provider === 'all' ? request(vault.app).delete(`/tokens/${user}`).set(auth) : request(vault.app).delete(one).set(auth);
  }
}

async function tokenOf(user: string, provider: string): Promise<string | undefined> {
  const res = await request(vault.app).get(`/tokens/${user}/${provider}`).set('Authorization', vault.auth(vault.keys.admin));
  return res.status === 200 ? (res.body.access_token as string) : undefined;
}

describe('scopes and provider allowlists', () => {
  const rows = (Object.keys(EXPECTED) as CallerName[]).flatMap((caller, c) =>
    OPERATIONS.map((operation, o) => ({ caller, operation, status: EXPECTED[caller][operation], user: `matrix-${c}-${o}` })),
  );

  test.each(rows)('$caller: $operation answers $status', async ({ caller, operation, status, user }) => {
    for (const provider of ['github', 'google']) {
      const seeded = await request(vault.app)
        .put(`/tokens/${user}/${provider}`)
        .set('Authorization', vault.auth(vault.keys.admin))
        .send({ type: 'oauth2', access_token: `at-${provider}-${user}` });
      expect(seeded.status).toBe(201);
    }

    const res = await call(operation, user, vault.keys[caller as keyof CallerKeys]);

    expect(res.status).toBe(status);
    const [verb, provider] = operation.split(' ') as [string, string];
    if (status === 403) {
      expectError(res, 403, 'forbidden');
      // Nothing changed and nothing leaked.
      expect(await tokenOf(user, 'github')).toBe(`at-github-${user}`);
      expect(await tokenOf(user, 'google')).toBe(`at-google-${user}`);
      expect(res.text).not.toContain('at-');
      return;
    }
    const visible = VISIBLE[caller] ?? [];
    if (verb === 'get') expect(res.body.access_token).toBe(`at-${provider}-${user}`);
    if (verb === 'list') expect(res.body.credentials.map((c: { provider: string }) => c.provider)).toEqual(visible);
    if (verb === 'put') expect(await tokenOf(user, provider)).toBe(`at-new-${user}`);
    if (verb === 'delete' && provider !== 'all') expect(await tokenOf(user, provider)).toBeUndefined();
    if (operation === 'delete all') {
      expect(res.body).toEqual({ user, deleted: visible });
      for (const p of ['github', 'google']) expect(await tokenOf(user, p)).toBe(visible.includes(p) ? undefined : `at-${p}-${user}`);
    }
  });

  test('a caller limited to github is refused an unknown provider with 403, not told that it does not exist', async () => {
    const res = await request(vault.app).get('/tokens/matrix-unknown/gitlab').set('Authorization', vault.auth(vault.keys.githubOnly));
    expectError(res, 403, 'forbidden');
  });

  test('the scope is checked before the body is read', async () => {
    const res = await request(vault.app).put('/tokens/matrix-scope-first/github').set('Authorization', vault.auth(vault.keys.reader)).send({ nonsense: true });
    expectError(res, 403, 'forbidden');
  });

  test('the Bearer scheme is case-insensitive', async () => {
    const res = await request(vault.app).get('/tokens/matrix-scheme').set('Authorization', `bearer ${vault.keys.reader}`);
    expect(res.status).toBe(200);
  });
});

describe('rate limit on failed authentications', () => {
  const unknownKey = (i: number) => `Bearer tv_test_guess_${String(i).padStart(4, '0')}`;

  async function fail(own: TestVault, times: number): Promise<void> {
    for (let i = 0; i < times; i++) {
      const res = await request(own.app).get('/tokens/limit-user/github').set('Authorization', unknownKey(i));
      expectError(res, 401, 'unauthorized');
    }
  }

  test('after 20 failures within a minute the 21st request is refused with 429 even with a valid key, until the minute is over', async () => {
    await withOwnVault(async (own) => {
      const valid = () => request(own.app).get('/tokens/limit-user').set('Authorization', own.auth(own.keys.reader));
      await fail(own, 20);

      const blocked = await valid();
      expectError(blocked, 429, 'too_many_requests');
      expect(blocked.headers['retry-after']).toBe('60');
      expect(blocked.headers['cache-control']).toBe('no-store');

      // The probes need no key and stay available to the blocked address.
      for (const probe of ['/healthz', '/readyz', '/metrics']) expect((await request(own.app).get(probe)).status).toBe(200);

      own.clock.advance(59_000);
      const stillBlocked = await valid();
      expectError(stillBlocked, 429, 'too_many_requests');
      expect(stillBlocked.headers['retry-after']).toBe('1');

      own.clock.advance(1_000);
      const allowed = await valid();
      expect(allowed.status).toBe(200);
      expect(allowed.body).toEqual({ user: 'limit-user', credentials: [] });
    });
  });

  test('19 failures do not block a valid key', async () => {
    await withOwnVault(async (own) => {
      await fail(own, 19);
      const res = await request(own.app).get('/tokens/limit-user').set('Authorization', own.auth(own.keys.reader));
      expect(res.status).toBe(200);
    });
  });

  test('failures from an earlier minute do not count', async () => {
    await withOwnVault(async (own) => {
      await fail(own, 15);
      own.clock.advance(60_000);
      await fail(own, 15);
      const res = await request(own.app).get('/tokens/limit-user').set('Authorization', own.auth(own.keys.reader));
      expect(res.status).toBe(200);
    });
  });

  test('token_vault_auth_failures_total counts failures by reason', async () => {
    await withOwnVault(async (own) => {
      for (let i = 0; i < 2; i++) expect((await request(own.app).get('/tokens/metric-user/github')).status).toBe(401);
      await fail(own, 3);
      expect((await request(own.app).put('/tokens/metric-user/github').set('Authorization', own.auth(own.keys.reader)).send({ type: 'oauth2', access_token: 'at' })).status).toBe(403);
      await fail(own, 17);
      expect((await request(own.app).get('/tokens/metric-user').set('Authorization', own.auth(own.keys.reader))).status).toBe(429);

      const metrics = (await request(own.app).get('/metrics')).text;
      const count = (reason: string) => new RegExp(`^token_vault_auth_failures_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics)?.[1];
      expect({ missing: count('missing'), unknown_key: count('unknown_key'), scope: count('scope'), rate_limited: count('rate_limited') }).toEqual({
        missing: '2',
        unknown_key: '20',
        scope: '1',
        rate_limited: '1',
      });
    });
  });
});

describe('probes', () => {
  test('healthz, readyz and metrics answer without a key', async () => {
    const healthz = await request(vault.app).get('/healthz');
    expect(healthz.status).toBe(200);
    expect(healthz.body).toEqual({ status: 'ok' });

    const readyz = await request(vault.app).get('/readyz');
    expect(readyz.status).toBe(200);
    expect(readyz.body).toEqual({ status: 'ok' });

    const metrics = await request(vault.app).get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.text).toContain('# TYPE token_vault_http_request_duration_seconds histogram');
  });
});
