import { createPrivateKey, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDevCertificates } from '../../../src/cli/dev-certificates';
import { ConfigError, resolveConfig, type LoadedConfig } from '../../../src/config/load';
import { Keyring } from '../../../src/crypto/keyring';

/**
 * server.tls, server.publicPort and callers[].certSubject as the loader checks them: PEMs that
 * parse, a key that belongs to its certificate, a CA wherever client certificates are relied
 * on — errors name the field and never quote a key.
 */

type Raw = Record<string, unknown>;

const certs = generateDevCertificates({ hosts: ['localhost', '127.0.0.1'], clients: ['billing'], days: 30, now: new Date(), randomBytes });
const expired = generateDevCertificates({ hosts: ['localhost'], clients: [], days: 1, now: new Date(Date.now() - 10 * 86_400_000), randomBytes });
const KEY_BODY = certs.server.keyPem.split('\n')[1]!;

let dir: string;
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return { file: path };
};
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tv-tls-config-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const tlsFiles = (over: Raw = {}): Raw => ({
  cert: file('server.pem', certs.server.certPem),
  key: file('server-key.pem', certs.server.keyPem),
  ca: file('ca.pem', certs.ca.certPem),
  ...over,
});
const certCaller = (over: Raw = {}): Raw => ({ name: 'billing', certSubject: 'CN=billing', scopes: ['tokens:read'], providers: ['*'], ...over });

function load(raw: Raw, mode: 'development' | 'production' = 'development'): LoadedConfig {
  const env: Record<string, string> = mode === 'production' ? { NODE_ENV: 'production' } : {};
  return resolveConfig(mode === 'production' ? { keyring: Keyring.generateJson('k1'), ...raw } : raw, { env, mode, baseDir: dir });
}

function issuesOf(raw: Raw): string[] {
  try {
    load(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    // A private key never appears in an error, whatever field it was put in.
    for (const issue of issues) expect(issue).not.toContain(KEY_BODY);
    expect((err as ConfigError).message).not.toContain(KEY_BODY);
    return issues;
  }
  throw new Error('the configuration was accepted');
}

describe('server.tls', () => {
  test('certificate, key and CA from { file }: the certificates as PEM text, the key as a Secret; requireClientCert defaults to false', () => {
    const loaded = load({ server: { tls: tlsFiles() } });
    const tls = loaded.config.server.tls!;
    expect(tls.cert).toBe(certs.server.certPem.trimEnd());
    expect(tls.ca).toBe(certs.ca.certPem.trimEnd());
    expect(tls.key.reveal()).toBe(certs.server.keyPem.trimEnd());
    expect(String(tls.key)).toBe('[redacted]');
    expect(JSON.stringify(loaded.config)).not.toContain(KEY_BODY);
    expect(tls.requireClientCert).toBe(false);
    expect(loaded.warnings).toEqual([]);
  });

  test('inline PEM and { env } work too; production warns about the inline key only, not the public certificates', () => {
    const loaded = resolveConfig(
      {
        keyring: { env: 'KEYRING' },
        server: { tls: { cert: certs.server.certPem, key: certs.server.keyPem, ca: { env: 'TLS_CA' } } },
        callers: [certCaller()],
      },
      { env: { NODE_ENV: 'production', KEYRING: Keyring.generateJson('k1'), TLS_CA: certs.ca.certPem }, mode: 'production', baseDir: dir },
    );
    expect(loaded.config.server.tls?.ca).toBe(certs.ca.certPem);
    expect(loaded.warnings).toHaveLength(1);
    expect(loaded.warnings[0]).toMatch(/^inline secrets .*: server\.tls\.key$/);
    expect(loaded.warnings[0]).not.toContain(KEY_BODY);
  });

  test('the development publicUrl follows the scheme and the public port', () => {
    expect(load({ server: { tls: tlsFiles() } }).config.server.publicUrl).toBe('https://127.0.0.1:8080');
    expect(load({ server: { tls: tlsFiles(), publicPort: 8443 } }).config.server.publicUrl).toBe('https://127.0.0.1:8443');
    expect(load({ server: { publicPort: 8081 } }).config.server.publicUrl).toBe('http://127.0.0.1:8081');
  });

  test.each<[string, Raw, RegExp]>([
    ['a cert that is no PEM', { cert: 'not a certificate' }, /^server\.tls\.cert: holds no PEM certificate/],
    ['a private key given as cert', { cert: certs.server.keyPem }, /^server\.tls\.cert: holds a private key, not a certificate$/],
    ['a cert whose PEM body is damaged', { cert: '-----BEGIN CERTIFICATE-----\nMIIBroken\n-----END CERTIFICATE-----' }, /^server\.tls\.cert: certificate 1 of 1 does not parse$/],
    ['a key that is no PEM', { key: 'not a key' }, /^server\.tls\.key: is not a PEM private key/],
    ['a certificate given as key', { key: certs.server.certPem }, /^server\.tls\.key: is not a PEM private key/],
    ['the key of another certificate', { key: certs.clients[0]!.keyPem }, /^server\.tls\.key: does not belong to the certificate in server\.tls\.cert \(subject CN=localhost\)$/],
    [
      'an encrypted key',
      { key: createPrivateKey(certs.server.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }).toString() },
      /^server\.tls\.key: an encrypted private key is not supported/,
    ],
    ['a ca that is no PEM', { ca: 'nope' }, /^server\.tls\.ca: holds no PEM certificate/],
    ['requireClientCert without ca', { ca: undefined, requireClientCert: true }, /^server\.tls\.requireClientCert: requireClientCert needs ca/],
    ['a file that does not exist', { cert: { file: './missing.pem' } }, /^server\.tls\.cert: cannot read file \.\/missing\.pem: ENOENT$/],
    ['a misspelt field', { requireClientCerts: true }, /^server\.tls: .*requireClientCerts/],
  ])('%s is refused, naming the field', (_name, over, message) => {
    const tls = tlsFiles(over);
    for (const [field, value] of Object.entries(over)) if (value === undefined) delete tls[field];
    expect(issuesOf({ server: { tls } })).toEqual([expect.stringMatching(message)]);
  });

  test('cert and key are required', () => {
    expect(issuesOf({ server: { tls: { ca: tlsFiles().ca } } })).toEqual([
      expect.stringMatching(/^server\.tls\.cert: /),
      expect.stringMatching(/^server\.tls\.key: /),
    ]);
  });

  test('an expired certificate loads with a warning saying so', () => {
    const loaded = load({ server: { tls: { cert: expired.server.certPem, key: expired.server.keyPem } } });
    expect(loaded.warnings).toEqual([expect.stringMatching(/^server\.tls\.cert: the certificate expired on \d{4}-/)]);
  });
});

describe('server.publicPort', () => {
  test('must differ from port (0, any free port, excepted)', () => {
    expect(issuesOf({ server: { port: 8443, publicPort: 8443 } })).toEqual(['server.publicPort: must differ from port']);
    expect(load({ server: { port: 0, publicPort: 0 } }).config.server).toMatchObject({ port: 0, publicPort: 0 });
  });
});

describe('callers[].certSubject', () => {
  test('a caller may have keys, a certSubject or both; the subject is parsed', () => {
    const loaded = load({
      server: { tls: tlsFiles() },
      callers: [certCaller(), certCaller({ name: 'both', key: 'k-both', certSubject: 'O=Acme, CN=both' }), { name: 'keys', key: 'k-keys', scopes: ['admin'], providers: ['*'] }],
    });
    expect(loaded.config.callers.map((caller) => [caller.name, caller.certSubject?.canonical, caller.keys.length])).toEqual([
      ['billing', 'CN=billing', 0],
      ['both', 'CN=both,O=Acme', 1],
      ['keys', undefined, 1],
    ]);
  });

  test('a caller with only a certSubject counts as a caller in production', () => {
    expect(load({ server: { tls: tlsFiles() }, callers: [certCaller()] }, 'production').config.callers).toHaveLength(1);
  });

  test('needs server.tls.ca: without it no client certificate is ever verified', () => {
    const message = 'callers[0].certSubject: certSubject needs server.tls.ca: client certificates are verified against it';
    expect(issuesOf({ callers: [certCaller()] })).toEqual([message]);
    const { ca: _ca, ...withoutCa } = tlsFiles();
    expect(issuesOf({ server: { tls: withoutCa }, callers: [certCaller()] })).toEqual([message]);
  });

  test('a subject that is not a DN, and the same subject for two callers, are refused', () => {
    expect(issuesOf({ server: { tls: tlsFiles() }, callers: [certCaller({ certSubject: 'billing' })] })).toEqual([
      expect.stringMatching(/^callers\[0\]\.certSubject: not a distinguished name such as "CN=billing": expected TYPE=value/),
    ]);
    expect(issuesOf({ server: { tls: tlsFiles() }, callers: [certCaller({ certSubject: 'CN=a+O=b' })] })).toEqual([
      expect.stringMatching(/^callers\[0\]\.certSubject: .*multi-valued RDNs/),
    ]);
    expect(
      issuesOf({ server: { tls: tlsFiles() }, callers: [certCaller(), certCaller({ name: 'billing-2', certSubject: 'cn=billing' })] }),
    ).toEqual(['callers[1].certSubject: the same subject is also given to caller "billing"']);
  });
});
