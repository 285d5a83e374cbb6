import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { generateDevCertificates } from '../../../src/cli/dev-certificates';
import type { Io, Output } from '../../../src/cli/io';
import { main } from '../../../src/cli/main';
import { resolveConfig } from '../../../src/config/load';

/**
 * `token-vault dev-certs` and the certificates it makes, checked with node:crypto (not with
 * node-forge, which made them): who issued them, what for, and how the files are written.
 */

const NOW = new Date('2026-11-23T12:00:00.000Z');

function capture(): Output & { text: string } {
  return { text: '', isTTY: false, columns: 80, write(chunk: string) { this.text += chunk; } };
}

function testIo(cwd: string) {
  const stdout = capture();
  const stderr = capture();
  const io: Io = {
    stdout,
    stderr,
    env: {},
    cwd,
    now: () => NOW,
    randomBytes: (size) => randomBytes(size),
    fetch: () => Promise.reject(new Error('no network in this test')),
    sleep: () => Promise.resolve(),
    onInterrupt: () => () => undefined,
  };
  return { io, stdout, stderr };
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tv-dev-certs-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('generateDevCertificates', () => {
  const made = generateDevCertificates({ hosts: ['localhost', '127.0.0.1', '::1', 'vault.test'], clients: ['billing', 'reports_2'], days: 30, now: NOW, randomBytes });
  const ca = new X509Certificate(made.ca.certPem);
  const server = new X509Certificate(made.server.certPem);
  const clients = made.clients.map((client) => new X509Certificate(client.certPem));

  test('a self-signed CA with the CA flag; the server and client certificates are issued and signed by it', () => {
    expect(ca.ca).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(ca.subject).toMatch(/^CN=token-vault dev CA [0-9a-f]{8}\nO=token-vault dev$/);
    for (const cert of [server, ...clients]) {
      expect(cert.ca).toBe(false);
      expect(cert.checkIssued(ca)).toBe(true);
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.issuer).toBe(ca.subject);
    }
  });

  test('the server certificate names every host as a DNS or IP subjectAltName and is for serverAuth only', () => {
    expect(server.subject).toBe('CN=localhost');
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:vault.test');
    expect(server.checkHost('vault.test')).toBe('vault.test');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
  });

  test('each client certificate has exactly CN=<name> as its subject and is for clientAuth only', () => {
    expect(clients.map((cert) => cert.subject)).toEqual(['CN=billing', 'CN=reports_2']);
    for (const cert of clients) expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
  });

  test('RSA 2048 keys that belong to their certificates, SHA-256 signatures, random serials, valid from just before now for --days', () => {
    for (const [pem, cert] of [[made.server.keyPem, server], ...made.clients.map((client, i) => [client.keyPem, clients[i]!] as const)] as const) {
      const key = createPrivateKey(pem);
      expect(key.asymmetricKeyType).toBe('rsa');
      expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
      expect(cert.checkPrivateKey(key)).toBe(true);
    }
    expect(new Date(server.validFrom).getTime()).toBeLessThanOrEqual(NOW.getTime());
    expect(new Date(server.validFrom).getTime()).toBeGreaterThan(NOW.getTime() - 3600_000);
    expect(new Date(server.validTo).getTime()).toBe(Math.floor((NOW.getTime() + 30 * 86_400_000) / 1000) * 1000);
    // Node 20's X509Certificate has no signature-algorithm getter: look for the OID in the DER.
    const sha256WithRsa = Buffer.from('06092a864886f70d01010b', 'hex');
    for (const cert of [ca, server, ...clients]) expect(cert.raw.indexOf(sha256WithRsa)).toBeGreaterThan(0);
    // Serials: random, positive, no leading zero byte.
    expect(server.serialNumber).not.toBe(clients[0]!.serialNumber);
    for (const cert of [ca, server, ...clients]) {
      expect(cert.serialNumber).toMatch(/^[0-9A-F]{32}$/);
      expect(Number.parseInt(cert.serialNumber.slice(0, 2), 16)).toBeGreaterThan(0);
      expect(Number.parseInt(cert.serialNumber.slice(0, 2), 16)).toBeLessThan(0x80);
    }
  });
});

describe('token-vault dev-certs', () => {
  test('writes the CA, server and client files (keys 0600, no CA key) and prints a configuration the vault accepts', async () => {
    const dir = join(work, 'one');
    const { io, stdout, stderr } = testIo(work);
    expect(await main(['dev-certs', '--dir', dir, '--client', 'billing', '--client', 'reports', '--host', 'localhost,127.0.0.1', '--days', '10'], io)).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['ca.pem', 'client-billing-key.pem', 'client-billing.pem', 'client-reports-key.pem', 'client-reports.pem', 'server-key.pem', 'server.pem']);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const key of ['server-key.pem', 'client-billing-key.pem', 'client-reports-key.pem']) expect(statSync(join(dir, key)).mode & 0o777).toBe(0o600);
    for (const cert of ['ca.pem', 'server.pem', 'client-billing.pem']) expect(statSync(join(dir, cert)).mode & 0o777).toBe(0o644);

    const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')));
    expect(new X509Certificate(readFileSync(join(dir, 'client-billing.pem'))).verify(ca.publicKey)).toBe(true);
    expect(new X509Certificate(readFileSync(join(dir, 'server.pem'))).subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');

    // No private key ever reaches the terminal.
    expect(stdout.text + stderr.text).not.toContain('PRIVATE KEY');
    expect(stdout.text).toContain(`curl --cacert ${join(dir, 'ca.pem')} --cert ${join(dir, 'client-billing.pem')} --key ${join(dir, 'client-billing-key.pem')} https://localhost:8080/`);

    const snippet = parseYaml(stdout.text.slice(stdout.text.indexOf('server:'))) as Record<string, unknown>;
    const loaded = resolveConfig({ ...snippet, providers: { github: { type: 'oauth2', clientId: 'c', clientSecret: 's', tokenUrl: 'http://127.0.0.1:1/token' } } }, {
      env: {},
      mode: 'development',
      baseDir: work,
    });
    expect(loaded.config.server.tls).toMatchObject({ requireClientCert: false });
    expect(loaded.config.server.tls?.ca).toBe(readFileSync(join(dir, 'ca.pem'), 'utf8').replace(/\n$/, ''));
    expect(loaded.config.callers.map((caller) => [caller.name, String(caller.certSubject), caller.keys.length])).toEqual([
      ['billing', 'CN=billing', 0],
      ['reports', 'CN=reports', 0],
    ]);
  });

  test('without --client: only the CA and the server certificate, and a server.tls without ca', async () => {
    const dir = join(work, 'server-only');
    const { io, stdout } = testIo(work);
    expect(await main(['dev-certs', '--dir', dir], io)).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['ca.pem', 'server-key.pem', 'server.pem']);
    expect(new X509Certificate(readFileSync(join(dir, 'server.pem'))).subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(stdout.text).not.toContain('ca: ');
    expect(stdout.text).not.toContain('callers:');
  });

  test('--dir defaults to ./.data/certs under the working directory', async () => {
    const cwd = join(work, 'default-dir');
    const { io } = testIo(cwd);
    expect(await main(['dev-certs'], io)).toBe(0);
    expect(readdirSync(join(cwd, '.data', 'certs')).sort()).toEqual(['ca.pem', 'server-key.pem', 'server.pem']);
  });

  test('existing files are never replaced without --force: exit 1 naming them, files unchanged; --force replaces them all', async () => {
    const dir = join(work, 'force');
    const first = testIo(work);
    expect(await main(['dev-certs', '--dir', dir, '--client', 'billing'], first.io)).toBe(0);
    const before = readFileSync(join(dir, 'ca.pem'), 'utf8');
    const clientBefore = readFileSync(join(dir, 'client-billing.pem'), 'utf8');

    // A new client name alone is enough to refuse: the CA and server files would be replaced.
    const refused = testIo(work);
    expect(await main(['dev-certs', '--dir', dir, '--client', 'reports'], refused.io)).toBe(1);
    expect(refused.stderr.text).toContain('refusing to replace existing files; pass --force');
    expect(refused.stderr.text).toContain(`  - ${join(dir, 'ca.pem')}`);
    expect(refused.stderr.text).not.toContain('client-reports');
    expect(readFileSync(join(dir, 'ca.pem'), 'utf8')).toBe(before);
    expect(readdirSync(dir)).not.toContain('client-reports.pem');

    writeFileSync(join(dir, 'server-key.pem'), 'not a key', { mode: 0o644 });
    const forced = testIo(work);
    expect(await main(['dev-certs', '--dir', dir, '--client', 'billing', '--force'], forced.io)).toBe(0);
    expect(readFileSync(join(dir, 'ca.pem'), 'utf8')).not.toBe(before);
    expect(readFileSync(join(dir, 'client-billing.pem'), 'utf8')).not.toBe(clientBefore);
    expect(statSync(join(dir, 'server-key.pem')).mode & 0o777).toBe(0o600);
    expect(createPrivateKey(readFileSync(join(dir, 'server-key.pem'))).asymmetricKeyType).toBe('rsa');
    // No temp files left behind.
    expect(readdirSync(dir).filter((name) => name.startsWith('.'))).toEqual([]);
  });

  test.each([
    [['--host', 'bad host'], '--host: "bad host" is neither a DNS name nor an IP address'],
    [['--host', ','], '--host: give at least one'],
    [['--client', '../x'], '--client: "../x" is not a caller name'],
    [['--client', 'a', '--client', 'a'], '--client: "a" is given twice'],
    [['--days', '0'], '--days: must be a whole number from 1 to 825'],
    [['--days', '1000'], '--days: must be a whole number from 1 to 825'],
    [['--bits', '4096'], "Unknown option '--bits'"],
  ])('%j is a usage error (exit 2) and writes nothing', async (args, message) => {
    const dir = join(work, `usage-${randomBytes(4).toString('hex')}`);
    const { io, stderr } = testIo(work);
    expect(await main(['dev-certs', '--dir', dir, ...args], io)).toBe(2);
    expect(stderr.text).toContain(message);
    expect(() => readdirSync(dir)).toThrow();
  });

  test('--help describes the files, the options and the TLS variables of the CLI', async () => {
    const { io, stdout } = testIo(work);
    expect(await main(['dev-certs', '--help'], io)).toBe(0);
    expect(stdout.text).toMatch(/^Usage: token-vault dev-certs /);
    for (const text of ['--force', '0600', 'TOKEN_VAULT_CA', 'TOKEN_VAULT_CLIENT_CERT']) expect(stdout.text).toContain(text);
  });
});
