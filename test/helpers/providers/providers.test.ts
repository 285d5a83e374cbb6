import { OidcServer } from './oidc';
import { ScriptedTokenServer } from './scripted-token-server';

/**
 * The test OAuth servers themselves: a real oidc-provider with refresh-token rotation and failure
 * injection, and a scripted token endpoint. Later tests rely on exactly these behaviours.
 */

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown>;
}

/** A token request as curl would send it: a urlencoded form, optionally with Basic auth. */
async function postForm(url: string, form: Record<string, string>, basic?: { id: string; secret: string }, signal?: AbortSignal): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (basic) headers.authorization = `Basic ${Buffer.from(`${basic.id}:${basic.secret}`).toString('base64')}`;
  const res = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(form).toString(), signal });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: the test looks at text
  }
  return { status: res.status, headers: res.headers, text, json };
}

describe('OidcServer with rotation and a 2 s access-token lifetime', () => {
  let oidc: OidcServer;
  beforeAll(async () => {
    oidc = await OidcServer.start({ accessTtlSeconds: 2 });
  });
  afterAll(async () => {
    await oidc.stop();
  });
  afterEach(async () => {
    await oidc.reset();
  });

  const refreshBasic = (refreshToken: string) =>
    postForm(oidc.tokenUrl, { grant_type: 'refresh_token', refresh_token: refreshToken }, oidc.clients.basic);

  it('reads its endpoints from the discovery document', () => {
    expect(oidc.issuer).toBe(`http://127.0.0.1:${oidc.port}`);
    expect(oidc.tokenUrl).toBe(`${oidc.issuer}/token`);
    expect(oidc.revocationUrl).toBe(`${oidc.issuer}/token/revocation`);
  });

  it('issues tokens without a browser, with the configured access-token lifetime', async () => {
    const issued = await oidc.issue({ accountId: 'alice' });
    expect(issued).toEqual({ access_token: expect.any(String), refresh_token: expect.any(String), expires_in: 2, account_id: 'alice' });
    expect((await oidc.issue()).account_id).not.toBe((await oidc.issue()).account_id);
  });

  it('a refresh with client_secret_basic answers a new access token and a new refresh token (rotation)', async () => {
    const issued = await oidc.issue();
    const res = await refreshBasic(issued.refresh_token);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ token_type: 'Bearer', expires_in: 2, scope: 'openid offline_access' });
    expect(res.json.access_token).toEqual(expect.any(String));
    expect(res.json.access_token).not.toBe(issued.access_token);
    expect(res.json.refresh_token).toEqual(expect.any(String));
    expect(res.json.refresh_token).not.toBe(issued.refresh_token);

    // and the new refresh token works in turn
    expect((await refreshBasic(res.json.refresh_token as string)).status).toBe(200);
  });

  it('reusing a rotated refresh token answers invalid_grant and revokes the family: the new token dies too', async () => {
    const issued = await oidc.issue();
    const first = await refreshBasic(issued.refresh_token);
    expect(first.status).toBe(200);
    const rotated = first.json.refresh_token as string;

    const reuse = await refreshBasic(issued.refresh_token);
    expect({ status: reuse.status, body: reuse.json }).toEqual({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'grant request is invalid' },
    });
    const afterReuse = await refreshBasic(rotated);
    expect({ status: afterReuse.status, error: afterReuse.json.error }).toEqual({ status: 400, error: 'invalid_grant' });

    expect(await oidc.calls()).toMatchObject({
      token: { total: 3 },
      refresh: {
        total: 3,
        success: 1,
        errors: { invalid_grant: 2 },
        details: { 'refresh token already used': 1, 'refresh token not found': 1 },
      },
      injected: 0,
    });
  });

  it('three concurrent refreshes with one token answer 200, invalid_grant, invalid_grant, and the winner\'s new token is dead too', async () => {
    const issued = await oidc.issue();
    const answers = await Promise.all([1, 2, 3].map(() => refreshBasic(issued.refresh_token)));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 400, 400]);
    const winner = answers.find((a) => a.status === 200);
    const next = await refreshBasic(winner?.json.refresh_token as string);
    expect({ status: next.status, error: next.json.error }).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('post-client authenticates with client_secret_post; a wrong secret answers 401 invalid_client', async () => {
    const issued = await oidc.issue({ clientId: oidc.clients.post.id });
    const { id, secret } = oidc.clients.post;
    const ok = await postForm(oidc.tokenUrl, { grant_type: 'refresh_token', refresh_token: issued.refresh_token, client_id: id, client_secret: secret });
    expect(ok.status).toBe(200);
    expect(ok.json.refresh_token).not.toBe(issued.refresh_token);

    const wrong = await postForm(oidc.tokenUrl, { grant_type: 'refresh_token', refresh_token: ok.json.refresh_token as string, client_id: id, client_secret: 'nope' });
    expect({ status: wrong.status, body: wrong.json }).toEqual({
      status: 401,
      body: { error: 'invalid_client', error_description: 'client authentication failed' },
    });
    const basicWrong = await postForm(oidc.tokenUrl, { grant_type: 'refresh_token', refresh_token: 'x' }, { id: 'basic-client', secret: 'nope' });
    expect(basicWrong.status).toBe(401);
    expect(basicWrong.headers.get('www-authenticate')).toMatch(/^Basic realm=.*error="invalid_client"/);

    // a token of one client presented by the other is not that client's grant
    const foreign = await refreshBasic(ok.json.refresh_token as string);
    expect({ status: foreign.status, error: foreign.json.error }).toEqual({ status: 400, error: 'invalid_grant' });
    expect((await oidc.calls()).refresh.details).toMatchObject({ 'client mismatch': 1 });
  });

  it('records every token request: method, path, headers with authorization, parsed form', async () => {
    const issued = await oidc.issue();
    await refreshBasic(issued.refresh_token);
    const [recorded, ...rest] = await oidc.requests();
    expect(rest).toEqual([]);
    expect(recorded).toMatchObject({
      method: 'POST',
      path: '/token',
      form: { grant_type: 'refresh_token', refresh_token: issued.refresh_token },
      body: `grant_type=refresh_token&refresh_token=${issued.refresh_token}`,
    });
    expect(recorded?.headers.authorization).toBe(`Basic ${Buffer.from('basic-client:basic-secret').toString('base64')}`);
    await oidc.clearRequests();
    expect(await oidc.requests()).toEqual([]);
  });

  it("mode 'status' answers 503 with Retry-After for `times` requests, then the real provider answers again", async () => {
    const issued = await oidc.issue();
    await oidc.mode({ mode: 'status', status: 503, retryAfter: 7, body: { error: 'temporarily_unavailable' }, times: 2 });
    for (let i = 0; i < 2; i++) {
      const res = await refreshBasic(issued.refresh_token);
      expect({ status: res.status, retryAfter: res.headers.get('retry-after'), body: res.json }).toEqual({
        status: 503,
        retryAfter: '7',
        body: { error: 'temporarily_unavailable' },
      });
    }
    // the injected answers never reached the provider: the refresh token is still unused
    expect((await refreshBasic(issued.refresh_token)).status).toBe(200);
    expect(await oidc.calls()).toMatchObject({ token: { total: 3 }, refresh: { total: 1, success: 1 }, injected: 2 });
    expect(await oidc.requests()).toHaveLength(3);
  });

  it("mode 'status' can answer a form-encoded body and an HTTP-date Retry-After", async () => {
    await oidc.mode({ mode: 'status', status: 400, body: { error: 'invalid_grant' }, contentType: 'application/x-www-form-urlencoded', retryAfter: 'Wed, 21 Oct 2015 07:28:00 GMT' });
    const res = await refreshBasic('anything');
    expect({ status: res.status, type: res.headers.get('content-type'), text: res.text, retryAfter: res.headers.get('retry-after') }).toEqual({
      status: 400,
      type: 'application/x-www-form-urlencoded',
      text: 'error=invalid_grant',
      retryAfter: 'Wed, 21 Oct 2015 07:28:00 GMT',
    });
  });

  it("mode 'status' sends extra headers, e.g. a redirect's Location", async () => {
    await oidc.mode({ mode: 'status', status: 307, headers: { location: 'http://127.0.0.1:9/elsewhere' }, times: 1 });
    const res = await fetch(oidc.tokenUrl, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ grant_type: 'refresh_token' }) });
    expect({ status: res.status, location: res.headers.get('location') }).toEqual({ status: 307, location: 'http://127.0.0.1:9/elsewhere' });
  });

  it("mode 'slow' delays the answer, then the real provider answers", async () => {
    const issued = await oidc.issue();
    await oidc.mode({ mode: 'slow', delayMs: 400, times: 1 });
    const started = Date.now();
    const res = await refreshBasic(issued.refresh_token);
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);
    expect((await oidc.calls()).injected).toBe(0);
  });

  it("mode 'hang' never answers; reset drops the hung request and normal answers resume", async () => {
    const issued = await oidc.issue();
    await oidc.mode({ mode: 'hang' });
    await expect(refreshBasicWithin(issued.refresh_token, 300)).rejects.toThrow();
    expect((await oidc.calls()).injected).toBe(1);
    await oidc.reset();
    expect((await refreshBasic(issued.refresh_token)).status).toBe(200);
  });

  it('revoking the access token revokes the refresh token of its grant', async () => {
    const issued = await oidc.issue();
    const revoked = await oidc.revoke(issued.access_token);
    expect(revoked.status).toBe(200);
    const res = await refreshBasic(issued.refresh_token);
    expect({ status: res.status, error: res.json.error }).toEqual({ status: 400, error: 'invalid_grant' });
    expect((await oidc.calls()).revocation).toEqual({ total: 1, success: 1, errors: {} });
  });

  it('the refresh helper speaks both client authentication methods', async () => {
    const basic = await oidc.refresh((await oidc.issue()).refresh_token);
    const post = await oidc.refresh((await oidc.issue({ clientId: 'post-client' })).refresh_token, 'post');
    expect([basic.status, post.status]).toEqual([200, 200]);
    const [basicReq, postReq] = await oidc.requests();
    expect(basicReq?.headers.authorization).toMatch(/^Basic /);
    expect(postReq?.headers.authorization).toBeUndefined();
    expect(postReq?.form).toMatchObject({ client_id: 'post-client', client_secret: 'post-secret' });
  });

  it('rejects an unknown mode', async () => {
    await expect(oidc.mode({ mode: 'teapot' } as never)).rejects.toThrow(/400/);
  });

  function refreshBasicWithin(refreshToken: string, ms: number): Promise<Answer> {
    return postForm(oidc.tokenUrl, { grant_type: 'refresh_token', refresh_token: refreshToken }, oidc.clients.basic, AbortSignal.timeout(ms));
  }
});

describe('OidcServer without rotation', () => {
  it('answers the same refresh token, which stays usable', async () => {
    const oidc = await OidcServer.start({ rotation: false });
    try {
      const issued = await oidc.issue();
      expect(issued.expires_in).toBe(3600);
      for (let i = 0; i < 2; i++) {
        const res = await oidc.refresh(issued.refresh_token);
        expect(res.status).toBe(200);
        expect(res.body.refresh_token).toBe(issued.refresh_token);
      }
    } finally {
      await oidc.stop();
      await oidc.stop();
      await oidc.kill();
    }
  });

  it('kill() ends the provider at once: its port refuses connections', async () => {
    const oidc = await OidcServer.start();
    await oidc.kill();
    await expect(fetch(`${oidc.issuer}/.well-known/openid-configuration`)).rejects.toThrow();
    await oidc.stop();
  });
});

describe('ScriptedTokenServer', () => {
  let scripted: ScriptedTokenServer;
  beforeEach(async () => {
    scripted = await ScriptedTokenServer.start();
  });
  afterEach(async () => {
    await scripted.stop();
  });

  it('answers queued responses in order, then the default, and records every request', async () => {
    scripted.respond(
      { status: 200, body: { access_token: 'a1', expires_in: '3600', token_type: 'bearer' } },
      { status: 200, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'access_token=a2&token_type=bearer' },
      { status: 429, headers: { 'retry-after': '3' }, body: { error: 'slow_down' } },
    );
    expect(scripted.pending).toBe(3);

    const first = await postForm(scripted.url, { grant_type: 'refresh_token', refresh_token: 'r1' }, { id: 'c', secret: 's' });
    expect({ status: first.status, type: first.headers.get('content-type'), body: first.json }).toEqual({
      status: 200,
      type: 'application/json',
      body: { access_token: 'a1', expires_in: '3600', token_type: 'bearer' },
    });
    const second = await postForm(scripted.url, { grant_type: 'refresh_token', refresh_token: 'r2' });
    expect({ status: second.status, type: second.headers.get('content-type'), text: second.text }).toEqual({
      status: 200,
      type: 'application/x-www-form-urlencoded',
      text: 'access_token=a2&token_type=bearer',
    });
    const third = await postForm(scripted.url, {});
    expect({ status: third.status, retryAfter: third.headers.get('retry-after') }).toEqual({ status: 429, retryAfter: '3' });
    const unscripted = await postForm(scripted.url, {});
    expect({ status: unscripted.status, error: unscripted.json.error }).toEqual({ status: 500, error: 'server_error' });

    scripted.setDefault({ status: 502, body: 'bad gateway' });
    expect((await postForm(scripted.url, {})).status).toBe(502);

    expect(scripted.requests).toHaveLength(5);
    expect(scripted.requests[0]).toMatchObject({
      method: 'POST',
      url: '/token',
      body: 'grant_type=refresh_token&refresh_token=r1',
      form: { grant_type: 'refresh_token', refresh_token: 'r1' },
      headers: { authorization: `Basic ${Buffer.from('c:s').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(scripted.requests[1]?.form.refresh_token).toBe('r2');
    scripted.clearRequests();
    expect(scripted.requests).toEqual([]);
  });

  it('delays or never answers when told to; stop() ends hung connections', async () => {
    scripted.respond({ status: 200, body: {}, delayMs: 300 }, { status: 200, body: {}, hang: true });
    const started = Date.now();
    expect((await postForm(scripted.url, {})).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);

    const hung = postForm(scripted.url, {});
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(scripted.requests).toHaveLength(2);
    await scripted.stop();
    await expect(hung).rejects.toThrow();
  });
});
