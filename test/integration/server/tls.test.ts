import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { generateDevCertificates } from '../../../src/cli/dev-certificates';
import type { Io, Output } from '../../../src/cli/io';
import { main as cli } from '../../../src/cli/main';
import { createListeners, type Listener } from '../../../src/server/listeners';
import { startVault, TEST_PROVIDERS, type TestVault } from '../../helpers/app';
import { freePort, RedisServer } from '../../helpers/redis-server';
import { buildVault, REPO_ROOT, VaultProcess, vaultEnv, type BuiltVault } from '../../helpers/vault-process';

/**
 * HTTPS and mutual TLS over real connections: certificates made by `token-vault dev-certs` in a
 * temp dir, vaults listening through createListeners (what main.ts runs) on loopback, requests
 * made with node:https, and at the end the compiled vault as its own process.
 */

interface Tls {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
}

interface Answer {
  status: number;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
  text: string;
}

/** One HTTPS request on its own connection; rejects with the TLS or socket error when there is no answer. */
function call(port: number, method: string, path: string, options: { tls?: Tls; headers?: Record<string, string>; body?: unknown } = {}): Promise<Answer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers = { ...options.headers, ...(payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}) };
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, method, path, headers, agent: false, ...options.tls }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('error', reject);
      res.on('end', () => {
        let body: Answer['body'] = {};
        try {
          body = JSON.parse(text) as Answer['body'];
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, body, text });
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The error code of a request that must fail before any answer (a refused handshake). */
async function refusal(answer: Promise<Answer>): Promise<string> {
  try {
    const { status } = await answer;
    return `answered ${status}`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

function silentIo(cwd: string): Io & { out: string } {
  const output = (): Output => ({ write: () => undefined, isTTY: false, columns: 80 });
  const io = {
    out: '',
    stdout: { write: (text: string) => void (io.out += text), isTTY: false, columns: 80 },
    stderr: output(),
    env: {},
    cwd,
    now: () => new Date(),
    randomBytes: (size: number) => randomBytes(size),
    fetch: () => Promise.reject(new Error('no network')),
    sleep: () => Promise.resolve(),
    onInterrupt: () => () => undefined,
  };
  return io;
}

let redis: RedisServer;
let work: string;
const files = (name: string) => join(work, 'certs', name);
const pem = (name: string) => readFileSync(files(name), 'utf8');
let ca: string;
let billing: Tls;
let stranger: Tls;
/** CN=billing too, but from a CA the vault does not trust. */
let foreign: Tls;
let writerKey: string;
let readerKey: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  work = mkdtempSync(join(tmpdir(), 'tv-tls-'));
  const io = silentIo(work);
  expect(await cli(['dev-certs', '--dir', join(work, 'certs'), '--host', 'localhost,127.0.0.1', '--client', 'billing', '--client', 'stranger'], io)).toBe(0);
  ca = pem('ca.pem');
  billing = { ca, cert: pem('client-billing.pem'), key: pem('client-billing-key.pem') };
  stranger = { ca, cert: pem('client-stranger.pem'), key: pem('client-stranger-key.pem') };
  const other = generateDevCertificates({ hosts: ['localhost'], clients: ['billing'], days: 1, now: new Date(), randomBytes });
  foreign = { ca, cert: other.clients[0]!.certPem, key: other.clients[0]!.keyPem };
}, 60_000);

afterAll(async () => {
  await redis?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A vault with server.tls and a public port, listening on random loopback ports. */
async function tlsVault(requireClientCert: boolean, keyPrefix: string): Promise<{ vault: TestVault; listeners: Listener[]; port: number; publicPort: number }> {
  const vault = await startVault({
    redis,
    keyPrefix,
    config: (standard) => ({
      ...standard,
      server: {
        port: 0,
        publicPort: 0,
        tls: { cert: { file: files('server.pem') }, key: { file: files('server-key.pem') }, ca: { file: files('ca.pem') }, requireClientCert },
      },
      callers: [
        ...(standard.callers as unknown[]),
        { name: 'billing', certSubject: 'CN=billing', scopes: ['tokens:read'], providers: ['github'] },
      ],
      providers: { ...structuredClone(TEST_PROVIDERS), github: { ...TEST_PROVIDERS.github, inboundWebhook: { secret: 'github-hook-secret' } } },
    }),
  });
  const listeners = createListeners(vault.deps);
  await Promise.all(listeners.map((listener) => new Promise<void>((resolve) => listener.server.listen(0, '127.0.0.1', resolve))));
  const portOf = (listener: Listener | undefined) => (listener?.server.address() as AddressInfo).port;
  return {
    vault,
    listeners,
    port: portOf(listeners.find((listener) => listener.surface === 'all')),
    publicPort: portOf(listeners.find((listener) => listener.surface === 'public')),
  };
}

async function stop({ vault, listeners }: { vault: TestVault; listeners: Listener[] }): Promise<void> {
  for (const { server } of listeners) server.closeAllConnections();
  await Promise.all(listeners.map(({ server }) => new Promise((resolve) => server.close(resolve))));
  await vault.close();
}

async function authFailures(vault: TestVault, reason: string): Promise<number> {
  return (await vault.deps.metrics.authFailures.get()).values.find((value) => value.labels.reason === reason)?.value ?? 0;
}

describe('a vault whose client certificates are optional (requireClientCert: false)', () => {
  let setup: Awaited<ReturnType<typeof tlsVault>>;
  let port: number;
  beforeAll(async () => {
    setup = await tlsVault(false, 'tv-tls-optional:');
    port = setup.port;
    writerKey = setup.vault.keys.writer;
    readerKey = setup.vault.keys.reader;
    const put = await call(port, 'PUT', '/tokens/u1/github', { tls: { ca }, headers: { authorization: `Bearer ${writerKey}` }, body: { type: 'oauth2', access_token: 'at-u1-github' } });
    expect(put.status).toBe(201);
    const google = await call(port, 'PUT', '/tokens/u1/google', { tls: { ca }, headers: { authorization: `Bearer ${writerKey}` }, body: { type: 'oauth2', access_token: 'at-u1-google' } });
    expect(google.status).toBe(201);
  });
  afterAll(() => stop(setup));

  test('the listeners: HTTPS asking for a client certificate on the API port, not on the public one', () => {
    expect(setup.listeners.map(({ surface, scheme, clientCert }) => ({ surface, scheme, clientCert }))).toEqual([
      { surface: 'all', scheme: 'https', clientCert: 'optional' },
      { surface: 'public', scheme: 'https', clientCert: 'off' },
    ]);
  });

  test('the server certificate verifies against the dev CA, for 127.0.0.1 and for localhost; without the CA the client refuses it', async () => {
    expect((await call(port, 'GET', '/healthz', { tls: { ca } })).status).toBe(200);
    expect((await call(port, 'GET', '/healthz', { tls: { ca, servername: 'localhost' } })).status).toBe(200);
    expect(await refusal(call(port, 'GET', '/healthz'))).toMatch(/^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/);
    expect(await refusal(call(port, 'GET', '/healthz', { tls: { ca, servername: 'vault.example.com' } }))).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  test('a client certificate from the CA with subject CN=billing authenticates as caller billing, with no API key', async () => {
    const res = await call(port, 'GET', '/tokens/u1/github', { tls: billing });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ user: 'u1', provider: 'github', access_token: 'at-u1-github' });
    // The audit trail names the caller the certificate stands for.
    expect(setup.vault.logs.audit()).toContainEqual(expect.objectContaining({ action: 'credential.reveal', caller: 'billing', user: 'u1', provider: 'github', outcome: 'ok' }));
  });

  test("the certificate's caller still has only its scopes and providers: no write, no google", async () => {
    const put = await call(port, 'PUT', '/tokens/u2/github', { tls: billing, body: { type: 'oauth2', access_token: 'x' } });
    expect([put.status, put.body.error?.message]).toEqual([403, 'caller "billing" lacks the tokens:write scope']);
    const google = await call(port, 'GET', '/tokens/u1/google', { tls: billing });
    expect(google.status).toBe(403);
  });

  test('a Bearer key works over TLS, and when present it decides even beside a valid certificate', async () => {
    expect((await call(port, 'GET', '/tokens/u1/google', { tls: { ca }, headers: { authorization: `Bearer ${readerKey}` } })).status).toBe(200);
    // The reader may read google; the certificate's caller may not: the key decided.
    expect((await call(port, 'GET', '/tokens/u1/google', { tls: billing, headers: { authorization: `Bearer ${readerKey}` } })).status).toBe(200);
    const wrong = await call(port, 'GET', '/tokens/u1/github', { tls: billing, headers: { authorization: 'Bearer tv_not_a_key' } });
    expect([wrong.status, wrong.body.error?.message]).toEqual([401, 'the API key is not valid']);
  });

  test('a certificate from another CA gets through the handshake but is never an identity: 401 untrusted_cert', async () => {
    const before = await authFailures(setup.vault, 'untrusted_cert');
    const res = await call(port, 'GET', '/tokens/u1/github', { tls: foreign });
    expect(res.status).toBe(401);
    expect(res.body.error?.message).toMatch(/^the client certificate was not issued by a CA this vault trusts \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    expect(await authFailures(setup.vault, 'untrusted_cert')).toBe(before + 1);
  });

  test('a certificate from the CA whose subject is no caller\'s certSubject: 401 unknown_cert, naming the subject', async () => {
    const before = await authFailures(setup.vault, 'unknown_cert');
    const res = await call(port, 'GET', '/tokens/u1/github', { tls: stranger });
    expect([res.status, res.body.error?.message]).toEqual([401, 'the client certificate\'s subject "CN=stranger" is no caller\'s certSubject']);
    expect(await authFailures(setup.vault, 'unknown_cert')).toBe(before + 1);
  });

  test('TLS 1.2 renegotiation, which could swap the certificate after it was verified, is refused', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, maxVersion: 'TLSv1.2', ...billing }, () => {
        if (!socket.authorized) resolve(`not authorized: ${String(socket.authorizationError)}`);
        socket.renegotiate({ rejectUnauthorized: true }, (err) => resolve(err ? 'refused' : 'renegotiated'));
      });
      // Flowing, so the handshake messages of the renegotiation are read at all.
      socket.on('data', () => undefined);
      socket.on('error', () => resolve('refused'));
      socket.on('close', () => resolve('refused'));
    });
    expect(outcome).toBe('refused');
  });

  test('neither key nor certificate: 401 saying either would do', async () => {
    const res = await call(port, 'GET', '/tokens/u1/github', { tls: { ca } });
    expect([res.status, res.body.error?.message]).toEqual([401, 'a valid API key (Authorization: Bearer <key>) or client certificate is required']);
  });

  test('the public port serves /healthz, /callback and /webhooks, and 404s everything else even with a valid key', async () => {
    const { publicPort } = setup;
    const key = { authorization: `Bearer ${readerKey}` };
    expect((await call(publicPort, 'GET', '/healthz', { tls: { ca } })).status).toBe(200);
    expect((await call(publicPort, 'GET', '/HEALTHZ/', { tls: { ca } })).status).toBe(200);
    const callback = await call(publicPort, 'GET', '/callback/github?state=nope&code=x', { tls: { ca } });
    expect([callback.status, callback.body.error?.code]).toEqual([400, 'invalid_request']);
    const start = await call(publicPort, 'GET', '/connect/start/nope', { tls: { ca } });
    expect(start.status).not.toBe(404);
    const webhook = await call(publicPort, 'POST', '/webhooks/github/revocation', { tls: { ca }, body: { type: 'account.revoked' } });
    expect([400, 401]).toContain(webhook.status);
    for (const [method, path] of [
      ['GET', '/tokens/u1/github'],
      ['GET', '/tokens/u1'],
      ['GET', '/readyz'],
      ['GET', '/metrics'],
      ['GET', '/providers'],
      ['GET', '/admin/keys'],
      ['POST', '/connect/github'],
      ['GET', '/connect/sessions/x'],
      ['GET', '/callback/github/extra'],
      ['GET', '/tokens/../healthz'],
    ] as const) {
      const res = await call(publicPort, method, path, { tls: billing, headers: key });
      expect({ path, status: res.status, code: res.body.error?.code }).toEqual({ path, status: 404, code: 'not_found' });
    }
    // The same routes on the API port.
    expect((await call(port, 'GET', '/tokens/u1/github', { tls: { ca }, headers: key })).status).toBe(200);
    expect((await call(port, 'GET', '/readyz', { tls: { ca } })).status).toBe(200);
  });
});

describe('a vault that requires client certificates (requireClientCert: true)', () => {
  let setup: Awaited<ReturnType<typeof tlsVault>>;
  beforeAll(async () => {
    setup = await tlsVault(true, 'tv-tls-required:');
    const put = await call(setup.port, 'PUT', '/tokens/u1/github', {
      tls: billing,
      headers: { authorization: `Bearer ${setup.vault.keys.writer}` },
      body: { type: 'oauth2', access_token: 'at-required' },
    });
    expect(put.status).toBe(201);
  });
  afterAll(() => stop(setup));

  test('a valid client certificate connects and authenticates', async () => {
    const res = await call(setup.port, 'GET', '/tokens/u1/github', { tls: billing });
    expect([res.status, res.body.access_token]).toEqual([200, 'at-required']);
  });

  test('no client certificate: the handshake is refused, an API key notwithstanding', async () => {
    const code = await refusal(call(setup.port, 'GET', '/tokens/u1/github', { tls: { ca }, headers: { authorization: `Bearer ${setup.vault.keys.reader}` } }));
    expect(code).toMatch(/^(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ECONNRESET|EPIPE)$/);
  });

  test('a certificate from another CA: the handshake is refused', async () => {
    const code = await refusal(call(setup.port, 'GET', '/healthz', { tls: foreign }));
    expect(code).toMatch(/^(ERR_SSL_TLSV1_ALERT_UNKNOWN_CA|ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE|ECONNRESET|EPIPE)$/);
  });

  test('the server certificate is no client certificate (serverAuth only): refused too', async () => {
    const code = await refusal(call(setup.port, 'GET', '/healthz', { tls: { ca, cert: pem('server.pem'), key: pem('server-key.pem') } }));
    expect(code).not.toMatch(/^answered/);
  });

  test('browsers and providers reach the public port without a certificate', async () => {
    expect((await call(setup.publicPort, 'GET', '/healthz', { tls: { ca } })).status).toBe(200);
    expect((await call(setup.publicPort, 'GET', '/callback/github?state=nope&code=x', { tls: { ca } })).status).toBe(400);
    expect((await call(setup.publicPort, 'GET', '/tokens/u1/github', { tls: { ca }, headers: { authorization: `Bearer ${setup.vault.keys.reader}` } })).status).toBe(404);
  });
});

describe('the compiled vault process with server.tls', () => {
  let built: BuiltVault;
  let vault: VaultProcess;
  let port: number;
  let publicPort: number;
  const writer = `tv_prod_${randomBytes(16).toString('hex')}`;

  beforeAll(async () => {
    built = await buildVault();
    [port, publicPort] = [await freePort(), await freePort()];
    const keyring = join(work, 'keyring.json');
    writeFileSync(keyring, JSON.stringify({ active: 'p1', keys: { p1: randomBytes(32).toString('base64') } }), { mode: 0o600 });
    const config = join(work, 'token-vault.yaml');
    writeFileSync(
      config,
      stringify({
        server: {
          publicPort,
          tls: { cert: { file: files('server.pem') }, key: { file: files('server-key.pem') }, ca: { file: files('ca.pem') }, requireClientCert: true },
        },
        redis: { url: { env: 'REDIS_URL' } },
        keyring: { file: keyring },
        callers: [
          // Certificate only: no keys at all.
          { name: 'billing', certSubject: 'CN=billing', scopes: ['tokens:read', 'admin'], providers: ['*'] },
          { name: 'writer', key: { env: 'WRITER_KEY' }, scopes: ['tokens:write'], providers: ['*'] },
        ],
        providers: { github: { type: 'oauth2', clientId: 'gh', clientSecret: { env: 'GH_SECRET' }, tokenUrl: 'https://github.com/login/oauth/access_token' } },
      }),
    );
    vault = VaultProcess.startBuilt(built, {
      cwd: work,
      env: vaultEnv({ NODE_ENV: 'production', TOKEN_VAULT_CONFIG: config, PORT: String(port), REDIS_URL: redis.url, WRITER_KEY: writer, GH_SECRET: 'gh-secret', LOG_LEVEL: 'info' }),
    });
  }, 120_000);

  afterAll(async () => {
    await vault?.kill();
    built?.remove();
  });

  test('listens on https on both ports, with no warnings, and serves mTLS callers', async () => {
    const listening = await vault.waitForListening();
    expect(listening).toMatchObject({ host: '0.0.0.0', port, tls: true, clientCert: 'required', msg: `token-vault listening on https://0.0.0.0:${port}` });
    const publicListening = await vault.waitForLog('public routes listening');
    expect(publicListening).toMatchObject({ port: publicPort, surface: 'public', msg: `token-vault public routes listening on https://0.0.0.0:${publicPort}` });
    expect(vault.warnings()).toEqual([]);

    expect((await call(port, 'GET', '/readyz', { tls: billing })).status).toBe(200);
    const put = await call(port, 'PUT', '/tokens/p1/github', { tls: billing, headers: { authorization: `Bearer ${writer}` }, body: { type: 'oauth2', access_token: 'at-p1' } });
    expect(put.status).toBe(201);
    const get = await call(port, 'GET', '/tokens/p1/github', { tls: billing });
    expect([get.status, get.body.access_token]).toEqual([200, 'at-p1']);
    expect(await refusal(call(port, 'GET', '/healthz', { tls: { ca } }))).not.toMatch(/^answered/);
    expect((await call(publicPort, 'GET', '/healthz', { tls: { ca } })).status).toBe(200);
    // No private key in anything the process wrote.
    expect(vault.output()).not.toContain('PRIVATE KEY');
  });

  test('the CLI talks to it over mTLS: TOKEN_VAULT_CA and a client certificate stand in for the admin key', async () => {
    const run = (env: Record<string, string>) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'keys'], { cwd: REPO_ROOT, env: vaultEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.once('error', reject);
        child.once('close', (code) => resolve({ code, stdout, stderr }));
      });
    const url = `https://localhost:${port}`;
    const mtls = await run({ TOKEN_VAULT_URL: url, TOKEN_VAULT_CA: files('ca.pem'), TOKEN_VAULT_CLIENT_CERT: files('client-billing.pem'), TOKEN_VAULT_CLIENT_KEY: files('client-billing-key.pem') });
    expect(mtls.stderr).toBe('');
    expect(mtls.code).toBe(0);
    expect(mtls.stdout).toMatch(/^active key: p1$/m);

    const noCa = await run({ TOKEN_VAULT_URL: url, TOKEN_VAULT_ADMIN_KEY: writer });
    expect(noCa.code).toBe(1);
    expect(noCa.stderr).toContain('set TOKEN_VAULT_CA');

    const halfCert = await run({ TOKEN_VAULT_URL: url, TOKEN_VAULT_CA: files('ca.pem'), TOKEN_VAULT_CLIENT_CERT: files('client-billing.pem') });
    expect(halfCert.code).toBe(2);
    expect(halfCert.stderr).toContain('TOKEN_VAULT_CLIENT_CERT and TOKEN_VAULT_CLIENT_KEY go together');
  }, 30_000);

  test('SIGTERM stops both listeners and exits 0', async () => {
    vault.signal('SIGTERM');
    expect(await vault.waitForExit(15_000)).toEqual({ code: 0, signal: null });
    expect(vault.logs().map((line) => line.msg)).toContain('stopped');
  });
});
