import { generateKeyPairSync } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { newNonce, signRequest, type OAuth1Client, type OAuth1SignOptions, type SignatureMethod } from '../../../src/providers/oauth1/signature';
import { Secret } from '../../../src/secret';
import { OAuth1Server, type OAuth1ServerConsumer } from './oauth1-server';

/**
 * The OAuth 1.0a test provider itself, driven by the vault's signer over real HTTP: the
 * three-legged flow for every signature method, then each check a real provider makes. Its
 * base string is its own, so every 200 here is two independent implementations agreeing.
 */

const rsa = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});

/** Secrets with characters that must be encoded, so a missed encoding step shows. */
const CONSUMERS: Record<SignatureMethod, OAuth1ServerConsumer> = {
  'HMAC-SHA1': { key: 'app-hmac-sha1', secret: 'cs sha1/+&=%', signatureMethod: 'HMAC-SHA1' },
  'HMAC-SHA256': { key: 'app-hmac-sha256', secret: 'cs sha256 ☕', signatureMethod: 'HMAC-SHA256' },
  'RSA-SHA1': { key: 'app-rsa-sha1', secret: 'unused', signatureMethod: 'RSA-SHA1', publicKey: rsa.publicKey },
  PLAINTEXT: { key: 'app-plaintext', secret: "cs plain!*'()", signatureMethod: 'PLAINTEXT' },
};

function clientFor(method: SignatureMethod, overrides: Partial<OAuth1Client> = {}): OAuth1Client {
  const consumer = CONSUMERS[method];
  return {
    consumerKey: consumer.key,
    consumerSecret: new Secret(consumer.secret),
    signatureMethod: method,
    ...(method === 'RSA-SHA1' ? { privateKey: new Secret(rsa.privateKey) } : {}),
    includeVersion: true,
    ...overrides,
  };
}

const CALLBACK = 'https://app.example/oauth/callback?state=s%201&x=y';

interface Answer {
  status: number;
  text: string;
  headers: Headers;
  /** The body as a form, for the token endpoints. */
  form: Record<string, string>;
}

interface Call {
  method: 'GET' | 'POST';
  url: string;
  form?: Record<string, string | string[]>;
  token?: { token: string; secret: string };
  extra?: Record<string, string>;
  /** Defaults: a fresh nonce, the server clock's current second. */
  nonce?: string;
  timestamp?: string;
  /** Changes the request after signing, as a tampering proxy would. */
  tamper?: (sent: Sent) => Sent;
}

/** What goes on the wire. */
interface Sent {
  url: string;
  body: string | undefined;
  authorization: string;
}

let clockMs = Date.now();
const seconds = () => String(Math.floor(clockMs / 1000));

async function signedCall(client: OAuth1Client, call: Call): Promise<Answer> {
  const options: OAuth1SignOptions = {
    token: call.token ? new Secret(call.token.token) : null,
    tokenSecret: call.token ? new Secret(call.token.secret) : null,
    nonce: call.nonce ?? newNonce(),
    timestamp: call.timestamp ?? seconds(),
    ...(call.extra ? { extra: call.extra } : {}),
  };
  const signed = signRequest(client, { method: call.method, url: call.url, ...(call.form ? { form: call.form } : {}) }, options);
  let sent: Sent = { url: call.url, body: call.form ? formBody(call.form) : undefined, authorization: signed.authorization };
  if (call.tamper) sent = call.tamper(sent);
  const headers: Record<string, string> = { authorization: sent.authorization };
  if (sent.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
  return answerOf(await fetch(sent.url, { method: call.method, headers, body: sent.body, redirect: 'manual' }));
}

function formBody(form: Record<string, string | string[]>): string {
  const pairs = Object.entries(form).flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((item): [string, string] => [name, item]));
  return new URLSearchParams(pairs).toString();
}

async function answerOf(res: Response): Promise<Answer> {
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, form: Object.fromEntries(new URLSearchParams(text)) };
}

/** The user's browser at the authorize step: one GET, the redirect read, never followed. */
async function authorize(server: OAuth1Server, requestToken: string): Promise<{ status: number; location: URL | undefined; text: string }> {
  const res = await fetch(`${server.authorizeUrl}?oauth_token=${encodeURIComponent(requestToken)}`, { redirect: 'manual' });
  const location = res.headers.get('location');
  return { status: res.status, location: location === null ? undefined : new URL(location), text: await res.text() };
}

async function requestToken(server: OAuth1Server, client: OAuth1Client, callback = CALLBACK): Promise<{ token: string; secret: string }> {
  const answer = await signedCall(client, { method: 'POST', url: server.requestTokenUrl, extra: { oauth_callback: callback } });
  expect(answer.status).toBe(200);
  expect(answer.form.oauth_callback_confirmed).toBe('true');
  return { token: answer.form.oauth_token!, secret: answer.form.oauth_token_secret! };
}

/** Request token and approval: what the callback receives. */
async function approved(server: OAuth1Server, client: OAuth1Client): Promise<{ temporary: { token: string; secret: string }; verifier: string }> {
  const temporary = await requestToken(server, client);
  const { status, location } = await authorize(server, temporary.token);
  expect(status).toBe(302);
  return { temporary, verifier: location!.searchParams.get('oauth_verifier')! };
}

const exchange = (server: OAuth1Server, client: OAuth1Client, temporary: { token: string; secret: string }, verifier: string) =>
  signedCall(client, { method: 'POST', url: server.accessTokenUrl, token: temporary, extra: { oauth_verifier: verifier } });

let server: OAuth1Server;
beforeAll(async () => {
  server = await new OAuth1Server({ consumers: Object.values(CONSUMERS), now: () => clockMs }).start();
});
afterAll(async () => {
  await server.stop();
});
beforeEach(() => {
  clockMs = Date.now();
  server.clearRequests();
});

describe.each<SignatureMethod>(['HMAC-SHA1', 'HMAC-SHA256', 'RSA-SHA1', 'PLAINTEXT'])('%s: the three-legged flow', (method) => {
  const client = clientFor(method);

  test('request token → authorize (302 to the callback) → access token → signed GET and POST to /api/echo', async () => {
    const temporary = await requestToken(server, client);
    expect(server.requests[0]!.authorization).toMatchObject({ oauth_callback: CALLBACK, oauth_signature_method: method, oauth_consumer_key: client.consumerKey });

    server.nextAuthorization({ accountId: 'u-1', screenName: 'jane' });
    const { status, location } = await authorize(server, temporary.token);
    expect(status).toBe(302);
    // The callback's own query is kept; the answer is appended.
    expect(`${location!.origin}${location!.pathname}`).toBe('https://app.example/oauth/callback');
    expect(location!.searchParams.get('state')).toBe('s 1');
    expect(location!.searchParams.get('x')).toBe('y');
    expect(location!.searchParams.get('oauth_token')).toBe(temporary.token);
    const verifier = location!.searchParams.get('oauth_verifier')!;
    expect(verifier).toBeTruthy();

    const access = await exchange(server, client, temporary, verifier);
    expect(access.status).toBe(200);
    expect(access.form).toEqual({ oauth_token: expect.any(String), oauth_token_secret: expect.any(String), user_id: 'u-1', screen_name: 'jane' });
    const token = { token: access.form.oauth_token!, secret: access.form.oauth_token_secret! };

    const get = await signedCall(client, { method: 'GET', url: `${server.url}/api/echo?q=caf%C3%A9+au+lait&tag=b&tag=a`, token });
    expect(get.status).toBe(200);
    expect(JSON.parse(get.text)).toEqual({ ok: true, user_id: 'u-1', consumer: client.consumerKey });

    const post = await signedCall(client, {
      method: 'POST',
      url: `${server.url}/api/statuses/update.json?include_entities=true`,
      form: { status: "Hello Ladies + Gentlemen, a signed OAuth request! ☕ (it's *here*)", empty: '', tag: ['z', 'a'] },
      token,
    });
    expect(post.status).toBe(200);
    expect(server.requests.at(-1)!.form).toMatchObject({ status: "Hello Ladies + Gentlemen, a signed OAuth request! ☕ (it's *here*)", empty: '' });
  });

  test('without oauth_version the flow works just as well', async () => {
    const bare = clientFor(method, { includeVersion: false });
    const { temporary, verifier } = await approved(server, bare);
    expect(server.requests[0]!.authorization).not.toHaveProperty('oauth_version');
    expect((await exchange(server, bare, temporary, verifier)).status).toBe(200);
  });
});

describe('the signature is really checked', () => {
  const client = clientFor('HMAC-SHA1');
  const echo = () => `${server.url}/api/echo`;

  test('a request signed with the wrong consumer secret is refused: 401 invalid signature', async () => {
    const issued = server.issueAccessToken();
    const answer = await signedCall(clientFor('HMAC-SHA1', { consumerSecret: new Secret('not the secret') }), {
      method: 'GET',
      url: echo(),
      token: { token: issued.token, secret: issued.tokenSecret },
    });
    expect(answer).toMatchObject({ status: 401, text: 'invalid signature' });
    expect(answer.headers.get('www-authenticate')).toMatch(/^OAuth /);
  });

  test('a request signed with the wrong token secret is refused', async () => {
    const issued = server.issueAccessToken();
    expect((await signedCall(client, { method: 'GET', url: echo(), token: { token: issued.token, secret: 'wrong' } })).text).toBe('invalid signature');
  });

  test('a changed query, form value or header parameter after signing is refused', async () => {
    const issued = server.issueAccessToken();
    const token = { token: issued.token, secret: issued.tokenSecret };
    const base: Call = { method: 'POST', url: `${echo()}?a=1`, form: { status: 'hello' }, token };
    const earlier = (authorization: string) => authorization.replace(/oauth_timestamp="(\d+)"/, (_, t: string) => `oauth_timestamp="${Number(t) - 1}"`);

    expect((await signedCall(client, base)).status).toBe(200);
    const tampered = [
      await signedCall(client, { ...base, tamper: (sent) => ({ ...sent, url: `${echo()}?a=2` }) }),
      await signedCall(client, { ...base, tamper: (sent) => ({ ...sent, body: 'status=hello%21' }) }),
      await signedCall(client, { ...base, tamper: (sent) => ({ ...sent, url: `${server.url}/api/other?a=1` }) }),
      await signedCall(client, { ...base, tamper: (sent) => ({ ...sent, authorization: earlier(sent.authorization) }) }),
    ];
    expect(tampered.map((answer) => [answer.status, answer.text])).toEqual(Array(4).fill([401, 'invalid signature']));
  });

  test('the signer and the server agree on a mixed-case host: both lower-case it (§3.4.1.2)', async () => {
    const issued = server.issueAccessToken({ accountId: 'u-host' });
    const host = `LocalHost.EXAMPLE:${server.port}`;
    const signed = signRequest(client, { method: 'GET', url: `http://${host}/api/echo?x=1` }, {
      token: new Secret(issued.token),
      tokenSecret: new Secret(issued.tokenSecret),
      nonce: newNonce(),
      timestamp: seconds(),
    });
    // fetch cannot set Host; node:http can, while connecting to 127.0.0.1.
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: server.port, path: '/api/echo?x=1', headers: { host, authorization: signed.authorization } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
    expect(JSON.parse(body)).toMatchObject({ user_id: 'u-host' });
  });

  test('protocol parameters may travel in the query (§3.5.3) or the form (§3.5.2) instead, but not in two places', async () => {
    const issued = server.issueAccessToken();
    const token = { token: issued.token, secret: issued.tokenSecret };
    // The header's name="value" pairs, already percent-encoded, as form-encoded text. Moved
    // elsewhere they keep the signature valid: it covers the same parameters wherever they travel.
    const asForm = (authorization: string) =>
      authorization.slice('OAuth '.length).split(', ').map((item) => item.replace(/"/g, '')).join('&');
    const headerToQuery = (sent: Sent): Sent => ({ ...sent, url: `${sent.url}&${asForm(sent.authorization)}`, authorization: '' });
    const headerToForm = (sent: Sent): Sent => ({ ...sent, body: `${sent.body}&${asForm(sent.authorization)}`, authorization: '' });

    expect((await signedCall(client, { method: 'GET', url: `${echo()}?a=1`, token, tamper: headerToQuery })).status).toBe(200);
    expect((await signedCall(client, { method: 'POST', url: echo(), form: { a: '1' }, token, tamper: headerToForm })).status).toBe(200);

    const inBoth = (sent: Sent): Sent => ({ ...headerToQuery(sent), authorization: sent.authorization });
    const both = await signedCall(client, { method: 'GET', url: `${echo()}?a=1`, token, tamper: inBoth });
    expect(both).toMatchObject({ status: 400, text: 'protocol parameters in more than one location' });
  });
});

describe('replay and freshness', () => {
  const client = clientFor('HMAC-SHA1');

  test('a replayed nonce is refused: the same signed request twice answers 200 then 401', async () => {
    const issued = server.issueAccessToken();
    const call: Call = { method: 'GET', url: `${server.url}/api/echo`, token: { token: issued.token, secret: issued.tokenSecret }, nonce: 'fixed-nonce-1' };
    expect((await signedCall(client, call)).status).toBe(200);
    expect(await signedCall(client, call)).toMatchObject({ status: 401, text: 'nonce already used' });
    // The nonce is unique per timestamp and token: another second, or another token, may use it again.
    expect((await signedCall(client, { ...call, timestamp: String(Number(seconds()) - 1) })).status).toBe(200);
    const other = server.issueAccessToken();
    expect((await signedCall(client, { ...call, token: { token: other.token, secret: other.tokenSecret } })).status).toBe(200);
  });

  test('a timestamp 300 s off is accepted; 301 s in the past or the future is refused', async () => {
    const issued = server.issueAccessToken();
    const token = { token: issued.token, secret: issued.tokenSecret };
    const at = (offset: number) => signedCall(client, { method: 'GET', url: `${server.url}/api/echo`, token, timestamp: String(Number(seconds()) + offset) });

    expect((await at(-300)).status).toBe(200);
    expect((await at(300)).status).toBe(200);
    expect(await at(-301)).toMatchObject({ status: 401, text: 'timestamp outside the accepted window' });
    expect(await at(301)).toMatchObject({ status: 401, text: 'timestamp outside the accepted window' });
  });

  test('a request signed now is stale once the server clock has moved on 301 s', async () => {
    const issued = server.issueAccessToken();
    const timestamp = seconds();
    clockMs += 301_000;
    const answer = await signedCall(client, { method: 'GET', url: `${server.url}/api/echo`, token: { token: issued.token, secret: issued.tokenSecret }, timestamp });
    expect(answer).toMatchObject({ status: 401, text: 'timestamp outside the accepted window' });
  });
});

describe('temporary credentials and verifiers are single use', () => {
  const client = clientFor('HMAC-SHA1');

  test('a reused verifier is refused: the second exchange answers 401', async () => {
    const { temporary, verifier } = await approved(server, client);
    expect((await exchange(server, client, temporary, verifier)).status).toBe(200);
    expect(await exchange(server, client, temporary, verifier)).toMatchObject({ status: 401, text: 'request token already used' });
  });

  test('a reused request token is refused: at the authorize step, and as an access token', async () => {
    const { temporary, verifier } = await approved(server, client);
    expect(await authorize(server, temporary.token)).toMatchObject({ status: 400, text: 'request token already used' });
    expect((await exchange(server, client, temporary, verifier)).status).toBe(200);
    expect(await authorize(server, temporary.token)).toMatchObject({ status: 400, text: 'request token already used' });
    const asAccess = await signedCall(client, { method: 'GET', url: `${server.url}/api/echo`, token: temporary });
    expect(asAccess).toMatchObject({ status: 401, text: 'unknown or revoked access token' });
  });

  test('a wrong verifier is refused and does not burn the request token', async () => {
    const { temporary, verifier } = await approved(server, client);
    expect(await exchange(server, client, temporary, 'v-guess')).toMatchObject({ status: 401, text: 'invalid verifier' });
    expect((await exchange(server, client, temporary, verifier)).status).toBe(200);
  });

  test('an access token cannot be exchanged before the user approved', async () => {
    const temporary = await requestToken(server, client);
    expect(await exchange(server, client, temporary, 'anything')).toMatchObject({ status: 401, text: 'request token not authorized' });
  });
});

describe('the authorize step', () => {
  const client = clientFor('HMAC-SHA1');

  test('deny: the callback gets denied=<token> (as Twitter does) and the exchange is refused', async () => {
    const temporary = await requestToken(server, client);
    server.nextAuthorization({ deny: true });
    const { status, location } = await authorize(server, temporary.token);
    expect(status).toBe(302);
    expect(location!.searchParams.get('denied')).toBe(temporary.token);
    expect(location!.searchParams.get('state')).toBe('s 1');
    expect(location!.searchParams.has('oauth_verifier')).toBe(false);
    expect(await exchange(server, client, temporary, 'none')).toMatchObject({ status: 401, text: 'the user denied access' });
  });

  test('by default each approval is a fresh account', async () => {
    const first = await approved(server, client);
    const second = await approved(server, client);
    const a = await exchange(server, client, first.temporary, first.verifier);
    const b = await exchange(server, client, second.temporary, second.verifier);
    expect(a.form.user_id).toBeTruthy();
    expect(a.form.user_id).not.toBe(b.form.user_id);
  });

  test('an "oob" callback answers the verifier in the body instead of redirecting', async () => {
    const temporary = await requestToken(server, client, 'oob');
    const { status, location, text } = await authorize(server, temporary.token);
    expect(status).toBe(200);
    expect(location).toBeUndefined();
    const verifier = new URLSearchParams(text).get('oauth_verifier')!;
    expect((await exchange(server, client, temporary, verifier)).status).toBe(200);
  });

  test('the request-token call needs an oauth_callback that is a URL or "oob"', async () => {
    expect(await signedCall(client, { method: 'POST', url: server.requestTokenUrl })).toMatchObject({ status: 400, text: 'oauth_callback is required' });
    expect(await signedCall(client, { method: 'POST', url: server.requestTokenUrl, extra: { oauth_callback: 'not a url' } })).toMatchObject({
      status: 400,
      text: 'oauth_callback must be an absolute URL or "oob"',
    });
  });

  test('an unknown request token is refused', async () => {
    expect(await authorize(server, 'rt-made-up')).toMatchObject({ status: 400, text: 'unknown request token' });
  });
});

describe('consumers, versions and wrong calls', () => {
  test('an unknown consumer: 401; a signature method the consumer does not use: 400', async () => {
    const issued = server.issueAccessToken();
    const token = { token: issued.token, secret: issued.tokenSecret };
    expect(await signedCall(clientFor('HMAC-SHA1', { consumerKey: 'app-unknown' }), { method: 'GET', url: `${server.url}/api/echo`, token })).toMatchObject({
      status: 401,
      text: 'unknown consumer',
    });
    expect(await signedCall(clientFor('HMAC-SHA1', { signatureMethod: 'HMAC-SHA256' }), { method: 'GET', url: `${server.url}/api/echo`, token })).toMatchObject({
      status: 400,
      text: 'signature method HMAC-SHA256 is not allowed for this consumer',
    });
  });

  test("an access token issued to another consumer is refused", async () => {
    const issued = server.issueAccessToken({ consumerKey: CONSUMERS['HMAC-SHA256'].key });
    const answer = await signedCall(clientFor('HMAC-SHA1'), { method: 'GET', url: `${server.url}/api/echo`, token: { token: issued.token, secret: issued.tokenSecret } });
    expect(answer).toMatchObject({ status: 401, text: 'token issued to another consumer' });
  });

  test('oauth_version other than 1.0 is refused', async () => {
    const answer = await signedCall(clientFor('HMAC-SHA1', { includeVersion: false }), {
      method: 'POST',
      url: server.requestTokenUrl,
      extra: { oauth_callback: 'oob' },
      tamper: (sent) => ({ ...sent, authorization: `${sent.authorization}, oauth_version="2.0"` }),
    });
    expect(answer).toMatchObject({ status: 400, text: 'unsupported oauth_version' });
  });

  test('rejectVersion: a request with oauth_version is refused, the same one without it accepted', async () => {
    const strict = await new OAuth1Server({ consumers: [CONSUMERS['HMAC-SHA1']], rejectVersion: true }).start();
    try {
      const call: Call = { method: 'POST', url: strict.requestTokenUrl, extra: { oauth_callback: 'oob' }, timestamp: String(Math.floor(Date.now() / 1000)) };
      expect(await signedCall(clientFor('HMAC-SHA1', { includeVersion: true }), call)).toMatchObject({ status: 400, text: 'oauth_version is not accepted' });
      expect((await signedCall(clientFor('HMAC-SHA1', { includeVersion: false }), call)).status).toBe(200);
    } finally {
      await strict.stop();
    }
  });

  test('wrong calls answer a short text reason, never a stack', async () => {
    const answers = await Promise.all([
      fetch(`${server.url}/nowhere`).then(answerOf),
      fetch(server.requestTokenUrl).then(answerOf),
      fetch(server.authorizeUrl).then(answerOf),
      fetch(`${server.url}/api/echo`, { method: 'POST' }).then(answerOf),
      fetch(`${server.url}/api/echo`, { headers: { authorization: 'OAuth oauth_consumer_key=unquoted' } }).then(answerOf),
      fetch(`${server.url}/api/echo?x=%zz`).then(answerOf),
    ]);
    expect(answers.map(({ status, text }) => [status, text])).toEqual([
      [404, 'not found'],
      [405, 'method not allowed'],
      [400, 'oauth_token is required, once'],
      [400, 'missing oauth_consumer_key'],
      [400, 'malformed Authorization header'],
      [400, 'malformed percent-encoding'],
    ]);
    for (const { text, headers } of answers) {
      expect(headers.get('content-type')).toBe('text/plain');
      expect(text).not.toMatch(/\n\s+at /);
    }
  });

  test('every request is recorded with its form, its Authorization parameters and the answer', async () => {
    const issued = server.issueAccessToken({ accountId: 'u-rec' });
    const client = clientFor('HMAC-SHA1');
    await signedCall(client, { method: 'POST', url: `${server.url}/api/echo?q=1`, form: { status: 'a b' }, token: { token: issued.token, secret: issued.tokenSecret } });

    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({
      method: 'POST',
      url: '/api/echo?q=1',
      form: { status: 'a b' },
      authorization: { oauth_consumer_key: client.consumerKey, oauth_token: issued.token, oauth_signature_method: 'HMAC-SHA1', oauth_version: '1.0' },
      status: 200,
      reason: undefined,
    });
    expect(server.requests[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
  });
});
