import { createHash, randomBytes } from 'node:crypto';
import { Browser } from '../browser';
import { DEVICE_CODE_GRANT, OidcServer } from './oidc';
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

  it('without deviceIntervalSeconds the device authorization answer has no interval (RFC 8628: the client waits 5 s)', async () => {
    const res = await postForm(oidc.deviceAuthorizationUrl, { scope: 'openid' }, oidc.clients.basic);
    expect(res.status).toBe(200);
    expect(res.json).not.toHaveProperty('interval');
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

describe('OidcServer connect flows, driven by a hand-written client and the test browser', () => {
  // Nothing listens here: the browser stops at it, as the vault's callback would receive it.
  const REDIRECT_URI = 'http://127.0.0.1:9/callback/oidc';
  let oidc: OidcServer;
  beforeAll(async () => {
    oidc = await OidcServer.start({ redirectUris: [REDIRECT_URI], deviceIntervalSeconds: 1, accessTtlSeconds: 600 });
  });
  afterAll(async () => {
    await oidc.stop();
  });
  afterEach(async () => {
    await oidc.reset();
  });

  interface Authorization {
    verifier: string;
    url: URL;
  }

  /** An authorization request as an OAuth 2.1 client builds it: PKCE S256, state, nonce. */
  function authorization(params: Record<string, string> = {}): Authorization {
    const verifier = randomBytes(32).toString('base64url');
    const url = new URL(oidc.authorizationUrl);
    url.search = new URLSearchParams({
      client_id: oidc.clients.basic.id,
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'openid email offline_access',
      state: 'state-1',
      nonce: 'nonce-1',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      ...params,
    }).toString();
    return { verifier, url };
  }

  /** Opens the authorization URL in a fresh browser and stops at the redirect URI. */
  async function authorize(url: URL, browser = new Browser()) {
    return browser.follow(url, { until: (at) => at.href.startsWith(REDIRECT_URI) });
  }

  function exchange(code: string, verifier: string | undefined, redirectUri = REDIRECT_URI): Promise<Answer> {
    const form: Record<string, string> = { grant_type: 'authorization_code', code, redirect_uri: redirectUri };
    if (verifier !== undefined) form.code_verifier = verifier;
    return postForm(oidc.tokenUrl, form, oidc.clients.basic);
  }

  function claimsOf(jwt: unknown): Record<string, unknown> {
    const payload = typeof jwt === 'string' ? jwt.split('.')[1] : undefined;
    if (payload === undefined) throw new Error(`not a JWT: ${String(jwt)}`);
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  }

  function userinfo(accessToken: string): Promise<Response> {
    return fetch(oidc.userinfoUrl, { headers: { authorization: `Bearer ${accessToken}` } });
  }

  it('reads its new endpoints from the discovery document and registers the extra redirect URI', () => {
    expect({
      authorization: oidc.authorizationUrl,
      userinfo: oidc.userinfoUrl,
      device: oidc.deviceAuthorizationUrl,
      verification: oidc.deviceVerificationUrl,
      introspection: oidc.introspectionUrl,
      redirectUris: oidc.redirectUris,
    }).toEqual({
      authorization: `${oidc.issuer}/auth`,
      userinfo: `${oidc.issuer}/me`,
      device: `${oidc.issuer}/device/auth`,
      verification: `${oidc.issuer}/device`,
      introspection: `${oidc.issuer}/token/introspection`,
      redirectUris: ['http://127.0.0.1/callback', REDIRECT_URI],
    });
  });

  it('authorization code + PKCE: the scripted login as alice lands on the redirect URI with a code; the exchange answers access, refresh and ID tokens', async () => {
    const { url, verifier } = authorization();
    await oidc.login({ accountId: 'alice' });
    const landed = await authorize(url);
    expect(landed.status).toBe(303);
    expect(landed.url.searchParams.get('state')).toBe('state-1');
    expect(landed.url.searchParams.get('iss')).toBe(oidc.issuer);
    // login and consent come as two interactions
    expect(landed.hops.map((hop) => hop.pathname.replace(/\/[^/]{20,}$/, '/:uid'))).toEqual(['/auth', '/interaction/:uid', '/auth/:uid', '/interaction/:uid', '/auth/:uid']);

    const code = landed.url.searchParams.get('code') ?? '';
    const tokens = await exchange(code, verifier);
    expect(tokens.status).toBe(200);
    // offline_access is dropped without prompt=consent, yet the grant has a refresh token
    expect(tokens.json).toEqual({
      access_token: expect.any(String),
      refresh_token: expect.any(String),
      id_token: expect.any(String),
      expires_in: 600,
      scope: 'openid email',
      token_type: 'Bearer',
    });
    expect(claimsOf(tokens.json.id_token)).toMatchObject({ sub: 'alice', nonce: 'nonce-1', aud: oidc.clients.basic.id, iss: oidc.issuer });

    const [recorded] = await oidc.requests();
    expect(recorded?.form).toEqual({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
    expect((await oidc.calls()).interactions).toEqual({ login: 1, consent: 1, denied: 0 });

    // the refresh token rotates as the directly issued ones do
    const refreshed = await oidc.refresh(tokens.json.refresh_token as string);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).not.toBe(tokens.json.refresh_token);
  });

  it('a code is good once: exchanging it again answers invalid_grant and revokes the tokens it gave (RFC 6749 §4.1.2)', async () => {
    const { url, verifier } = authorization();
    const code = (await authorize(url)).url.searchParams.get('code') ?? '';
    const tokens = await exchange(code, verifier);
    expect(tokens.status).toBe(200);
    const again = await exchange(code, verifier);
    expect({ status: again.status, error: again.json.error }).toEqual({ status: 400, error: 'invalid_grant' });
    expect((await oidc.calls()).refresh).toMatchObject({ total: 0 });
    expect(await oidc.active(tokens.json.access_token as string)).toBe(false);
    expect((await oidc.refresh(tokens.json.refresh_token as string)).status).toBe(400);
  });

  it('userinfo with the access token answers sub, and email for scope email', async () => {
    const { url, verifier } = authorization();
    await oidc.login({ accountId: 'carol' });
    const tokens = await exchange((await authorize(url)).url.searchParams.get('code') ?? '', verifier);
    const me = await userinfo(tokens.json.access_token as string);
    expect({ status: me.status, body: await me.json() }).toEqual({
      status: 200,
      body: { sub: 'carol', email: 'carol@example.test', email_verified: true },
    });

    const openidOnly = authorization({ scope: 'openid' });
    const plain = await exchange((await authorize(openidOnly.url)).url.searchParams.get('code') ?? '', openidOnly.verifier);
    expect(await (await userinfo(plain.json.access_token as string)).json()).toEqual({ sub: expect.stringMatching(/^user-\d+$/) });
  });

  it('without a login script each flow logs in a fresh user-N', async () => {
    const subs: unknown[] = [];
    for (let i = 0; i < 2; i++) {
      const { url, verifier } = authorization();
      const tokens = await exchange((await authorize(url)).url.searchParams.get('code') ?? '', verifier);
      subs.push(claimsOf(tokens.json.id_token).sub);
    }
    expect(subs).toEqual([expect.stringMatching(/^user-\d+$/), expect.stringMatching(/^user-\d+$/)]);
    expect(subs[0]).not.toBe(subs[1]);
  });

  it('a browser with a provider session skips the login: same account, no new interaction for it', async () => {
    const browser = new Browser();
    await oidc.login({ accountId: 'dave' });
    await authorize(authorization().url, browser);
    expect(browser.cookies(oidc.issuer).map((c) => c.name)).toEqual(expect.arrayContaining(['_session', '_session.sig']));

    await oidc.login({ accountId: 'erin' });
    const again = authorization();
    const landed = await authorize(again.url, browser);
    // the grant already covers the scopes: no interaction at all
    expect(landed.hops.map((hop) => hop.pathname)).toEqual(['/auth']);
    const tokens = await exchange(landed.url.searchParams.get('code') ?? '', again.verifier);
    expect(claimsOf(tokens.json.id_token).sub).toBe('dave');
    expect((await oidc.calls()).interactions).toEqual({ login: 1, consent: 1, denied: 0 });
  });

  it('an authorization request without PKCE is refused: redirect with error=invalid_request, no login', async () => {
    const { url } = authorization();
    url.searchParams.delete('code_challenge');
    url.searchParams.delete('code_challenge_method');
    const landed = await authorize(url);
    expect(Object.fromEntries(landed.url.searchParams)).toEqual({
      error: 'invalid_request',
      error_description: 'Authorization Server policy requires PKCE to be used for this request',
      state: 'state-1',
      iss: oidc.issuer,
    });
    expect(landed.hops).toHaveLength(1);

    const plain = authorization({ code_challenge_method: 'plain' });
    expect((await authorize(plain.url)).url.searchParams.get('error_description')).toBe('not supported value of code_challenge_method');
  });

  it('an exchange without code_verifier, or with a wrong one, answers invalid_grant', async () => {
    for (const verifier of [undefined, randomBytes(32).toString('base64url')]) {
      const { url } = authorization();
      const code = (await authorize(url)).url.searchParams.get('code') ?? '';
      const res = await exchange(code, verifier);
      expect({ status: res.status, error: res.json.error }).toEqual({ status: 400, error: 'invalid_grant' });
    }
  });

  it('deny: the browser lands on the redirect URI with error=access_denied and the state', async () => {
    await oidc.login({ deny: true });
    const landed = await authorize(authorization().url);
    expect(Object.fromEntries(landed.url.searchParams)).toEqual({
      error: 'access_denied',
      error_description: 'the user denied access',
      state: 'state-1',
      iss: oidc.issuer,
    });
    // the denial was used up: the next flow logs in
    expect((await authorize(authorization().url)).url.searchParams.get('code')).toEqual(expect.any(String));
    expect((await oidc.calls()).interactions).toEqual({ login: 1, consent: 1, denied: 1 });
  });

  it('an unregistered redirect_uri gets an error page at the provider, never a redirect', async () => {
    const { url } = authorization({ redirect_uri: 'http://127.0.0.1:9/elsewhere' });
    const page = await authorize(url);
    expect({ status: page.status, at: page.url.pathname }).toEqual({ status: 400, at: '/auth' });
    expect(page.body).toContain('redirect_uri did not match any of the client&#39;s registered redirect_uris');
  });

  it("the code exchange can fail on purpose (grantType 'authorization_code'); the code still works after", async () => {
    const { url, verifier } = authorization();
    const code = (await authorize(url)).url.searchParams.get('code') ?? '';
    await oidc.mode({ mode: 'status', status: 503, body: { error: 'temporarily_unavailable' }, grantType: 'authorization_code', times: 1 });
    // a refresh is not the mode's grant type: it passes and does not use up `times`
    expect((await oidc.refresh((await oidc.issue()).refresh_token)).status).toBe(200);
    expect((await exchange(code, verifier)).status).toBe(503);
    expect((await exchange(code, verifier)).status).toBe(200);
    expect((await oidc.calls()).injected).toBe(1);

    const second = authorization();
    const secondCode = (await authorize(second.url)).url.searchParams.get('code') ?? '';
    await oidc.mode({ mode: 'status', status: 400, body: { error: 'invalid_grant' }, grantType: 'authorization_code' });
    expect((await exchange(secondCode, second.verifier)).json).toEqual({ error: 'invalid_grant' });
  });

  it('rejects a bad login script and a grantType mode outside the token endpoint', async () => {
    await expect(oidc.login({ accountId: '' })).rejects.toThrow(/400/);
    await expect(oidc.login({ accountId: 'x', deny: true })).rejects.toThrow(/400/);
    await expect(oidc.mode({ mode: 'hang', endpoint: 'revocation', grantType: 'x' })).rejects.toThrow(/400/);
  });

  describe('device authorization grant (RFC 8628)', () => {
    async function deviceAuthorization(scope = 'openid email offline_access'): Promise<Answer> {
      return postForm(oidc.deviceAuthorizationUrl, { scope }, oidc.clients.basic);
    }
    function poll(deviceCode: string, client: 'basic' | 'post' = 'basic'): Promise<Answer> {
      const form = { grant_type: DEVICE_CODE_GRANT, device_code: deviceCode };
      if (client === 'basic') return postForm(oidc.tokenUrl, form, oidc.clients.basic);
      return postForm(oidc.tokenUrl, { ...form, client_id: oidc.clients.post.id, client_secret: oidc.clients.post.secret });
    }

    it('answers a user code, the verification URIs and the configured interval', async () => {
      const res = await deviceAuthorization();
      expect(res.status).toBe(200);
      expect(res.json).toEqual({
        device_code: expect.any(String),
        user_code: expect.stringMatching(/^[A-Z]{4}-[A-Z]{4}$/),
        verification_uri: oidc.deviceVerificationUrl,
        verification_uri_complete: `${oidc.deviceVerificationUrl}?user_code=${res.json.user_code as string}`,
        expires_in: 600,
        interval: 1,
      });
      const [recorded] = await oidc.requests();
      expect(recorded).toMatchObject({ path: '/device/auth', form: { scope: 'openid email offline_access' } });
    });

    it('polls answer authorization_pending until approveDevice, then tokens for the scripted account', async () => {
      const { json } = await deviceAuthorization();
      const deviceCode = json.device_code as string;
      const pending = await poll(deviceCode);
      expect({ status: pending.status, error: pending.json.error }).toEqual({ status: 400, error: 'authorization_pending' });

      const approval = await oidc.approveDevice(json.user_code as string, { accountId: 'frank' });
      expect({ outcome: approval.outcome, status: approval.status }).toEqual({ outcome: 'approved', status: 200 });
      expect(approval.hops.map((hop) => hop.pathname.replace(/\/[^/]{20,}$/, '/:uid'))).toEqual([
        '/device',
        '/device',
        '/device',
        '/interaction/:uid',
        '/device/:uid',
        '/interaction/:uid',
        '/device/:uid',
      ]);

      const tokens = await poll(deviceCode);
      expect(tokens.status).toBe(200);
      // unlike the authorization endpoint, the device flow keeps offline_access without prompt=consent
      expect(tokens.json).toMatchObject({ token_type: 'Bearer', expires_in: 600, scope: 'openid email offline_access', refresh_token: expect.any(String) });
      expect(claimsOf(tokens.json.id_token).sub).toBe('frank');
      expect(await (await userinfo(tokens.json.access_token as string)).json()).toMatchObject({ sub: 'frank', email: 'frank@example.test' });
      const refreshed = await oidc.refresh(tokens.json.refresh_token as string);
      expect(refreshed.status).toBe(200);
      // the device code is spent, and presenting it again revokes its grant, as a reused code does
      expect((await poll(deviceCode)).json.error).toBe('invalid_grant');
      expect(await oidc.active(refreshed.body.access_token as string)).toBe(false);
    });

    it('post-client gets the device grant too, with client_secret_post', async () => {
      const res = await postForm(oidc.deviceAuthorizationUrl, { scope: 'openid', client_id: oidc.clients.post.id, client_secret: oidc.clients.post.secret });
      expect((await oidc.approveDevice(res.json.user_code as string)).outcome).toBe('approved');
      const tokens = await poll(res.json.device_code as string, 'post');
      expect(claimsOf(tokens.json.id_token)).toMatchObject({ sub: expect.stringMatching(/^user-\d+$/), aud: oidc.clients.post.id });
    });

    it('deny: the device page says denied and the poll answers access_denied', async () => {
      const { json } = await deviceAuthorization();
      expect((await oidc.approveDevice(json.user_code as string, { deny: true })).outcome).toBe('denied');
      const res = await poll(json.device_code as string);
      expect({ status: res.status, error: res.json.error }).toEqual({ status: 400, error: 'access_denied' });
    });

    it('an unknown code, or one already approved, is refused on the page; a login script given with an unknown code is dropped', async () => {
      const unknown = await oidc.approveDevice('BCDF-GHJK', { accountId: 'grace' });
      expect(unknown.outcome).toBe('code-not-found');
      expect(unknown.body).toContain('the code was not found');

      const { json } = await deviceAuthorization();
      // a wrong code's script was cleared: this login is a fresh user
      expect((await oidc.approveDevice(json.user_code as string)).outcome).toBe('approved');
      expect((await oidc.approveDevice(json.user_code as string)).outcome).toBe('code-already-used');
      const tokens = await poll(json.device_code as string);
      expect(claimsOf(tokens.json.id_token).sub).toMatch(/^user-\d+$/);
    });

    it("slow_down on demand: a status mode for the device grant answers the next N polls, other grants pass", async () => {
      const { json } = await deviceAuthorization();
      await oidc.mode({ mode: 'status', status: 400, body: { error: 'slow_down' }, grantType: DEVICE_CODE_GRANT, times: 2 });
      expect((await oidc.refresh((await oidc.issue()).refresh_token)).status).toBe(200);
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push((await poll(json.device_code as string)).json.error);
      expect(answers).toEqual(['slow_down', 'slow_down', 'authorization_pending']);
      expect((await oidc.calls()).injected).toBe(2);
    });

    it('the device authorization endpoint has failure modes too', async () => {
      await oidc.mode({ endpoint: 'device_authorization', mode: 'status', status: 503, retryAfter: 2, times: 1 });
      const failed = await deviceAuthorization();
      expect({ status: failed.status, retryAfter: failed.headers.get('retry-after') }).toEqual({ status: 503, retryAfter: '2' });
      expect((await deviceAuthorization()).status).toBe(200);
    });
  });

  describe('client credentials', () => {
    it('cc-client gets an access token for api:read with the --access-ttl lifetime, and no refresh token', async () => {
      const res = await postForm(oidc.tokenUrl, { grant_type: 'client_credentials', scope: 'api:read' }, oidc.clients.cc);
      expect({ status: res.status, body: res.json }).toEqual({
        status: 200,
        body: { access_token: expect.any(String), expires_in: 600, token_type: 'Bearer', scope: 'api:read' },
      });
      expect(await oidc.active(res.json.access_token as string, 'cc')).toBe(true);
      const [recorded] = await oidc.requests();
      expect(recorded?.headers.authorization).toBe(`Basic ${Buffer.from('cc-client:cc-secret').toString('base64')}`);
    });

    it('a scope the API does not have is dropped; a user client may not use the grant', async () => {
      const other = await postForm(oidc.tokenUrl, { grant_type: 'client_credentials', scope: 'api:admin' }, oidc.clients.cc);
      expect(other.json).toEqual({ access_token: expect.any(String), expires_in: 600, token_type: 'Bearer' });

      const basic = await postForm(oidc.tokenUrl, { grant_type: 'client_credentials', scope: 'api:read' }, oidc.clients.basic);
      expect({ status: basic.status, body: basic.json }).toEqual({
        status: 400,
        // oidc-provider's code for it, where RFC 6749 §5.2 has unauthorized_client
        body: { error: 'invalid_request', error_description: 'requested grant type is not allowed for this client' },
      });
    });
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
