import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  ConfigError,
  EXAMPLE_CONFIG_FILE,
  findConfigFile,
  loadConfig,
  resolveConfig,
  type LoadedConfig,
  type Mode,
} from '../../../src/config/load';
import type { OAuth1ProviderConfig, OAuth2ProviderConfig } from '../../../src/config/schema';
import { Keyring } from '../../../src/crypto/keyring';

const REPO_ROOT = resolve(__dirname, '../../..');
/** A folder nothing is read from unless a test creates it. */
const NO_DIR = '/nonexistent/token-vault-test';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tv-config-test-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});
/** A fresh empty folder under the test's temp dir. */
function freshDir(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

type Raw = Record<string, unknown>;
type Env = Record<string, string>;

function dev(raw: Raw, env: Env = {}, baseDir = NO_DIR): LoadedConfig {
  return resolveConfig(raw, { env, mode: 'development', baseDir });
}
function prod(raw: Raw, env: Env = {}, baseDir = NO_DIR): LoadedConfig {
  return resolveConfig(raw, { env: { NODE_ENV: 'production', ...env }, mode: 'production', baseDir });
}

/** The issues of the ConfigError `load` throws; fails the test when it does not throw one. */
function issuesOf(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const error = err as ConfigError;
    for (const issue of error.issues) expect(error.message).toContain(issue);
    return error.issues;
  }
  throw new Error('the configuration was accepted');
}
const issuesIn = (mode: Mode, raw: Raw, env: Env = {}) => issuesOf(() => (mode === 'production' ? prod(raw, env) : dev(raw, env)));

function oauth2(loaded: LoadedConfig, id: string): OAuth2ProviderConfig {
  const provider = loaded.config.providers[id];
  if (provider?.type !== 'oauth2') throw new Error(`provider ${id} is not oauth2`);
  return provider;
}
function oauth1(loaded: LoadedConfig, id: string): OAuth1ProviderConfig {
  const provider = loaded.config.providers[id];
  if (provider?.type !== 'oauth1') throw new Error(`provider ${id} is not oauth1`);
  return provider;
}

const sha256 = (value: string) => createHash('sha256').update(value).digest();
const keyringJson = (id = 'k1') => Keyring.generateJson(id);
const github = (over: Raw = {}): Raw => ({
  type: 'oauth2',
  clientId: 'gh-client',
  clientSecret: 'gh-secret',
  tokenUrl: 'https://github.com/login/oauth/access_token',
  ...over,
});
const twitter = (over: Raw = {}): Raw => ({ type: 'oauth1', consumerKey: 'tw-key', consumerSecret: 'tw-secret', ...over });
const caller = (over: Raw = {}): Raw => ({ name: 'billing', key: 'billing-key', scopes: ['tokens:read'], providers: ['*'], ...over });
/** A valid Standard Webhooks secret: "whsec_" and the base64 of 32 bytes. */
const WHSEC = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const subscriber = (over: Raw = {}): Raw => ({ url: 'https://hooks.example.com/vault', secret: WHSEC, events: ['token.*'], ...over });

/** A production configuration with every secret from the environment: no warnings. */
function productionSetup(): { raw: Raw; env: Env } {
  return {
    raw: {
      keyring: { env: 'TV_KEYRING_JSON' },
      callers: [caller({ key: { env: 'BILLING_API_KEY' } })],
      providers: { github: github({ clientSecret: { env: 'GITHUB_CLIENT_SECRET' } }) },
    },
    env: { TV_KEYRING_JSON: keyringJson(), BILLING_API_KEY: 'billing-key-value', GITHUB_CLIENT_SECRET: 'gh-secret-value' },
  };
}

describe('a minimal valid configuration', () => {
  test('an empty configuration is valid in development', () => {
    const loaded = dev({});
    expect(loaded.mode).toBe('development');
    expect(loaded.keyring).toBeUndefined();
    expect(loaded.config.callers).toEqual([]);
    expect(loaded.config.providers).toEqual({});
    expect(loaded.warnings).toEqual([]);
    expect(loaded.logLevel).toBe('info');
  });

  test('one provider, one caller and a keyring load with their values', () => {
    const json = keyringJson('k1');
    const loaded = dev({ keyring: JSON.parse(json) as unknown, callers: [caller({ providers: ['github'] })], providers: { github: github() } });
    expect(loaded.keyring?.activeId).toBe('k1');
    expect(loaded.config.callers).toEqual([
      { name: 'billing', scopes: ['tokens:read'], providers: ['github'], keys: [{ sha256: sha256('billing-key'), origin: 'inline' }] },
    ]);
    const provider = oauth2(loaded, 'github');
    expect(provider.clientId).toBe('gh-client');
    expect(provider.clientSecret.map((s) => s.reveal())).toEqual(['gh-secret']);
    expect(provider.tokenUrl).toBe('https://github.com/login/oauth/access_token');
  });
});

describe('defaults', () => {
  test('port 8080 and host 127.0.0.1 in development', () => {
    const loaded = dev({});
    expect(loaded.config.server.port).toBe(8080);
    expect(loaded.config.server.host).toBe('127.0.0.1');
  });

  test('host 0.0.0.0 in production', () => {
    const { raw, env } = productionSetup();
    const loaded = prod(raw, env);
    expect(loaded.config.server.host).toBe('0.0.0.0');
    expect(loaded.config.server.port).toBe(8080);
  });

  test.each<Mode>(['development', 'production'])('a configured host wins in %s', (mode) => {
    const { raw, env } = productionSetup();
    const withHost = { ...raw, server: { host: '10.1.2.3' } };
    const loaded = mode === 'production' ? prod(withHost, env) : dev(withHost, env);
    expect(loaded.config.server.host).toBe('10.1.2.3');
  });

  test('redis key prefix "tv:" and no replica wait', () => {
    const loaded = dev({});
    expect(loaded.config.redis.keyPrefix).toBe('tv:');
    expect(loaded.config.redis.waitReplicas).toBe(0);
    expect(loaded.config.redis.url).toBeUndefined();
  });

  test('an OAuth 2.0 provider defaults to client_secret_basic, authorization_code, 1 h lifetime', () => {
    const provider = oauth2(dev({ providers: { github: github() } }), 'github');
    expect(provider.clientAuth).toBe('client_secret_basic');
    expect(provider.grant).toBe('authorization_code');
    expect(provider.scopes).toEqual([]);
    expect(provider.defaultLifetimeSeconds).toBe(3600);
    expect(provider.maxConcurrency).toBe(16);
  });

  test('an OAuth 1.0a provider defaults to HMAC-SHA1 with oauth_version and secrets returned', () => {
    const provider = oauth1(dev({ providers: { twitter: twitter() } }), 'twitter');
    expect(provider.signatureMethod).toBe('HMAC-SHA1');
    expect(provider.includeVersion).toBe(true);
    expect(provider.signOnly).toBe(false);
  });

  test('bodyLimit defaults to 64kb, which is 65536 bytes', () => {
    const loaded = dev({});
    expect(loaded.config.server.bodyLimit).toBe(65536);
    expect(loaded.bodyLimitBytes).toBe(65536);
  });

  test.each([
    ['1mb', 1024 * 1024],
    ['128KB', 128 * 1024],
    ['4096', 4096],
    [2048, 2048],
  ])('bodyLimit %j is %i bytes', (bodyLimit, bytes) => {
    expect(dev({ server: { bodyLimit } }).bodyLimitBytes).toBe(bytes);
  });

  test('refresh and rewrap defaults follow DESIGN §3', () => {
    const loaded = dev({});
    expect(loaded.config.refresh).toEqual({ skewSeconds: 300, jitterSeconds: 30, workers: 8, leaseSeconds: 30, maxBackoffSeconds: 300, failedEventAfterSeconds: 300 });
    expect(loaded.config.rewrap).toEqual({ recordsPerSecond: 0 });
  });
});

describe('every error names the path of the bad field', () => {
  test.each(['not a url', 'ftp://github.com/token', ''])('providers.github.tokenUrl %j', (tokenUrl) => {
    const issues = issuesIn('development', { providers: { github: github({ tokenUrl }) } });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^providers\.github\.tokenUrl: /);
  });

  test('an unknown scope is reported at callers[0].scopes[0]', () => {
    const issues = issuesIn('development', { callers: [caller({ scopes: ['tokens:reed'] })] });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^callers\[0\]\.scopes\[0\]: /);
  });

  test('the second caller\'s second scope is reported at callers[1].scopes[1]', () => {
    const issues = issuesIn('development', {
      callers: [caller(), caller({ name: 'ops', key: 'ops-key', scopes: ['admin', 'root'] })],
    });
    expect(issues).toEqual([expect.stringMatching(/^callers\[1\]\.scopes\[1\]: /)]);
  });

  test.each([
    ['a top-level key', { provider: {} }, '(top level)', 'provider'],
    ['a server key', { server: { prot: 8080 } }, 'server', 'prot'],
    ['a redis key', { redis: { keyprefix: 'x:' } }, 'redis', 'keyprefix'],
    ['a provider key', { providers: { github: github({ tokenURL: 'https://x.example/t' }) } }, 'providers.github', 'tokenURL'],
    ['a caller key', { callers: [caller({ scope: ['tokens:read'] })] }, 'callers[0]', 'scope'],
    ['a refresh key', { refresh: { skew: 60 } }, 'refresh', 'skew'],
  ])('a misspelt %s is rejected as unrecognized', (_label, raw, path, key) => {
    const issues = issuesIn('development', raw);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.startsWith(`${path}: `)).toBe(true);
    expect(issues[0]).toMatch(/unrecognized/i);
    expect(issues[0]).toContain(key);
  });

  test.each([
    ['providers.github.type', { providers: { github: github({ type: 'oauth3' }) } }],
    ['providers.github.clientId', { providers: { github: github({ clientId: '' }) } }],
    ['providers.github.clientAuth', { providers: { github: github({ clientAuth: 'private_key_jwt' }) } }],
    ['providers.github.defaultLifetimeSeconds', { providers: { github: github({ defaultLifetimeSeconds: 10 }) } }],
    ['providers.twitter.signatureMethod', { providers: { twitter: twitter({ signatureMethod: 'HMAC-MD5' }) } }],
    ['providers.GitHub', { providers: { GitHub: github() } }],
    ['server.port', { server: { port: 70000 } }],
    ['server.bodyLimit', { server: { bodyLimit: 'lots' } }],
    ['redis.keyPrefix', { redis: { keyPrefix: '{tv}:' } }],
    ['refresh.leaseSeconds', { refresh: { leaseSeconds: 1 } }],
    ['callers[0].name', { callers: [caller({ key: undefined, keys: ['k'], name: 'has space' })] }],
    ['callers[0].providers[0]', { callers: [caller({ key: undefined, keys: ['k'], providers: ['Not Valid'] })] }],
    ['webhooks.subscribers[0].events', { webhooks: { subscribers: [subscriber({ events: [] })] } }],
    ['webhooks.subscribers[0].events[0]', { webhooks: { subscribers: [subscriber({ events: ['token.revokd'] })] } }],
    ['webhooks.subscribers[0].secret', { webhooks: { subscribers: [subscriber({ secret: 'not-a-whsec-secret' })] } }],
    ['webhooks.subscribers[0].secrets[1]', { webhooks: { subscribers: [subscriber({ secret: undefined, secrets: [WHSEC, 'whsec_dG9vc2hvcnQ='] })] } }],
    ['webhooks.subscribers[1].name', { webhooks: { subscribers: [subscriber({ name: 'hooks' }), subscriber({ name: 'hooks' })] } }],
    ['webhooks.retrySchedule', { webhooks: { retrySchedule: [] } }],
    ['providers.github.inboundWebhook.verifier', { providers: { github: github({ inboundWebhook: { verifier: 'gitlab', secret: 's' } }) } }],
    ['providers.github.inboundWebhook.secrets', { providers: { github: github({ inboundWebhook: { toleranceSeconds: 60 } }) } }],
  ])('%s', (path, raw) => {
    const issues = issuesIn('development', raw);
    expect(issues.length).toBeGreaterThan(0);
    for (const issue of issues) expect(issue.startsWith(`${path}: `)).toBe(true);
  });

  // A caller written with the `key` shorthand (as in most configurations) that has any other
  // error must still give a ConfigError, not crash the start-up with a TypeError.
  test.each([
    ['callers[0].name', caller({ name: 'has space' })],
    ['callers[0].scopes', caller({ scopes: [] })],
    ['callers[0].providers', caller({ providers: [] })],
    ['callers[0].providers[0]', caller({ providers: ['Not Valid'] })],
  ])('a caller using `key` with a bad field is reported at %s', (path, bad) => {
    const issues = issuesIn('development', { callers: [bad] });
    expect(issues.length).toBeGreaterThan(0);
    for (const issue of issues) expect(issue.startsWith(`${path}: `)).toBe(true);
  });

  test('several bad fields are all reported at once', () => {
    const issues = issuesIn('development', {
      server: { port: -1 },
      providers: { github: github({ tokenUrl: 'nope' }), twitter: twitter({ consumerKey: '' }) },
    });
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^server\.port: /),
        expect.stringMatching(/^providers\.github\.tokenUrl: /),
        expect.stringMatching(/^providers\.twitter\.consumerKey: /),
      ]),
    );
  });

  test('the error message lists the issues under "invalid configuration"', () => {
    try {
      dev({ server: { port: 'http' } });
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/^invalid configuration:\n {2}- server\.port: /);
    }
  });
});

describe('secret references', () => {
  test('{ env: NAME } resolves from the given environment', () => {
    const loaded = dev({ providers: { github: github({ clientSecret: { env: 'GITHUB_CLIENT_SECRET' } }) } }, { GITHUB_CLIENT_SECRET: 'from-env' });
    const [secret] = oauth2(loaded, 'github').clientSecret;
    expect(secret?.reveal()).toBe('from-env');
    expect(secret?.origin).toBe('env');
  });

  test('a missing variable is an error naming the field and the variable (keyring, caller key, consumerSecret)', () => {
    expect(issuesIn('development', { keyring: { env: 'TV_NO_SUCH_KEYRING' } })).toEqual([expect.stringMatching(/^keyring: .*TV_NO_SUCH_KEYRING/)]);
    expect(issuesIn('development', { callers: [caller({ key: { env: 'TV_NO_SUCH_KEY' } })] })).toEqual([
      expect.stringMatching(/^callers\[0\]\.key: .*TV_NO_SUCH_KEY/),
    ]);
    expect(issuesIn('development', { providers: { twitter: twitter({ consumerSecret: { env: 'TV_NO_SUCH_SECRET' } }) } })).toEqual([
      expect.stringMatching(/^providers\.twitter\.consumerSecret: .*TV_NO_SUCH_SECRET/),
    ]);
  });

  test('a missing variable in clientSecret is an error naming the field and the variable', () => {
    const single = issuesIn('development', { providers: { github: github({ clientSecret: { env: 'TV_NO_SUCH_SECRET' } }) } });
    expect(single).toEqual([expect.stringMatching(/^providers\.github\.clientSecret(\[0\])?: .*TV_NO_SUCH_SECRET/)]);
    const list = issuesIn('development', {
      providers: { github: github({ clientSecret: ['inline-secret', { env: 'TV_NO_SUCH_OLD_SECRET' }] }) },
    });
    expect(list).toEqual([expect.stringMatching(/^providers\.github\.clientSecret(\[1\])?: .*TV_NO_SUCH_OLD_SECRET/)]);
  });

  test('an empty variable counts as missing', () => {
    expect(issuesIn('development', { keyring: { env: 'TV_EMPTY' } }, { TV_EMPTY: '' })).toEqual([
      expect.stringMatching(/^keyring: .*TV_EMPTY/),
    ]);
  });

  test('an invalid variable name is refused', () => {
    expect(issuesIn('development', { keyring: { env: 'NOT-A-NAME' } })).toEqual([expect.stringMatching(/^keyring: .*NOT-A-NAME/)]);
  });

  test.each([
    ['an object with two sources', { env: 'A', file: 'b' }],
    ['an unknown source', { vault: 'secret/x' }],
    ['an empty string', ''],
    ['a number', 42],
  ])('%s is refused', (_label, ref) => {
    expect(issuesIn('development', { providers: { twitter: twitter({ consumerSecret: ref }) } })).toEqual([
      expect.stringMatching(/^providers\.twitter\.consumerSecret: /),
    ]);
  });

  test('{ file: path } is read relative to baseDir with one trailing newline stripped', () => {
    const dir = freshDir('secret-files');
    writeFileSync(join(dir, 'consumer-secret'), 'tw-secret-from-file\n');
    writeFileSync(join(dir, 'crlf-secret'), 'crlf-secret-value\r\n');
    const loaded = dev(
      {
        providers: {
          twitter: twitter({ consumerSecret: { file: 'consumer-secret' } }),
          github: github({ clientSecret: { file: './crlf-secret' } }),
        },
      },
      {},
      dir,
    );
    expect(oauth1(loaded, 'twitter').consumerSecret.reveal()).toBe('tw-secret-from-file');
    expect(oauth1(loaded, 'twitter').consumerSecret.origin).toBe('file');
    expect(oauth2(loaded, 'github').clientSecret[0]?.reveal()).toBe('crlf-secret-value');
  });

  test('an absolute { file } path is read as given', () => {
    const dir = freshDir('absolute-secret');
    const file = join(dir, 'secret.txt');
    writeFileSync(file, 'absolute-value\n');
    expect(oauth1(dev({ providers: { twitter: twitter({ consumerSecret: { file } }) } }), 'twitter').consumerSecret.reveal()).toBe('absolute-value');
  });

  test('the injected readFile receives the path resolved against baseDir', () => {
    const read: string[] = [];
    const loaded = resolveConfig(
      { providers: { twitter: twitter({ consumerSecret: { file: 'secrets/tw' } }) } },
      {
        env: {},
        mode: 'development',
        baseDir: '/etc/token-vault',
        readFile: (path) => {
          read.push(path);
          return 'injected\n';
        },
      },
    );
    expect(read).toEqual(['/etc/token-vault/secrets/tw']);
    expect(oauth1(loaded, 'twitter').consumerSecret.reveal()).toBe('injected');
  });

  test('a missing file is an error naming the field and the file', () => {
    const dir = freshDir('missing-secret');
    const issues = issuesOf(() => dev({ providers: { twitter: twitter({ consumerSecret: { file: 'nope.txt' } }) } }, {}, dir));
    expect(issues).toEqual([expect.stringMatching(/^providers\.twitter\.consumerSecret: .*nope\.txt/)]);
  });

  test('an empty file is an error', () => {
    const dir = freshDir('empty-secret');
    writeFileSync(join(dir, 'empty'), '\n');
    const issues = issuesOf(() => dev({ providers: { twitter: twitter({ consumerSecret: { file: 'empty' } }) } }, {}, dir));
    expect(issues).toEqual([expect.stringMatching(/^providers\.twitter\.consumerSecret: .*empty/)]);
  });
});

describe('caller keys', () => {
  test('an inline key is kept only as its SHA-256', () => {
    const loaded = dev({ callers: [caller({ key: 'inline-api-key' })] });
    expect(loaded.config.callers[0]?.keys).toEqual([{ sha256: sha256('inline-api-key'), origin: 'inline' }]);
    expect(JSON.stringify(loaded.config)).not.toContain('inline-api-key');
  });

  test('a key from the environment is kept as its SHA-256', () => {
    const loaded = dev({ callers: [caller({ key: { env: 'BILLING_API_KEY' } })] }, { BILLING_API_KEY: 'env-api-key' });
    expect(loaded.config.callers[0]?.keys).toEqual([{ sha256: sha256('env-api-key'), origin: 'env' }]);
  });

  test('a { sha256: hex } key is taken as the digest, in either case', () => {
    const digest = sha256('previous-key');
    const loaded = dev({ callers: [caller({ key: undefined, keys: [{ sha256: digest.toString('hex') }, { sha256: sha256('x').toString('hex').toUpperCase() }] })] });
    expect(loaded.config.callers[0]?.keys).toEqual([
      { sha256: digest, origin: 'sha256' },
      { sha256: sha256('x'), origin: 'sha256' },
    ]);
  });

  test('a list of keys in every form, for rotation', () => {
    const dir = freshDir('caller-key-file');
    writeFileSync(join(dir, 'key'), 'file-api-key\n');
    const loaded = dev(
      { callers: [caller({ key: undefined, keys: ['inline-key', { env: 'K' }, { file: 'key' }, { sha256: sha256('old').toString('hex') }] })] },
      { K: 'env-key' },
      dir,
    );
    expect(loaded.config.callers[0]?.keys.map((k) => [k.sha256.toString('hex'), k.origin])).toEqual([
      [sha256('inline-key').toString('hex'), 'inline'],
      [sha256('env-key').toString('hex'), 'env'],
      [sha256('file-api-key').toString('hex'), 'file'],
      [sha256('old').toString('hex'), 'sha256'],
    ]);
  });

  test.each(['abc', 'z'.repeat(64), sha256('x').toString('hex') + '00'])('a sha256 of %j is refused', (hex) => {
    expect(issuesIn('development', { callers: [caller({ key: { sha256: hex } })] })).toEqual([expect.stringMatching(/^callers\[0\]\.key: /)]);
  });

  test('key and keys together are refused', () => {
    expect(issuesIn('development', { callers: [caller({ key: 'a', keys: ['b'] })] })).toEqual([
      expect.stringMatching(/^callers\[0\]\.keys: give one of key or keys, not both/),
    ]);
  });

  test('neither key, keys nor certSubject is refused', () => {
    expect(issuesIn('development', { callers: [caller({ key: undefined })] })).toEqual([
      expect.stringMatching(/^callers\[0\]\.keys: give key or keys \(API keys\), certSubject/),
    ]);
  });

  test('an empty keys list is refused', () => {
    expect(issuesIn('development', { callers: [caller({ key: undefined, keys: [] })] })).toEqual([expect.stringMatching(/^callers\[0\]\.keys: /)]);
  });

  test('duplicate caller names are refused at the second one', () => {
    const issues = issuesIn('development', { callers: [caller({ key: 'k1' }), caller({ key: 'k2' })] });
    expect(issues).toEqual([expect.stringMatching(/^callers\[1\]\.name: .*billing/)]);
  });

  test('a caller naming an unknown provider is refused at that provider', () => {
    const issues = issuesIn('development', { providers: { github: github() }, callers: [caller({ providers: ['github', 'gitlab'] })] });
    expect(issues).toEqual([expect.stringMatching(/^callers\[0\]\.providers\[1\]: .*gitlab/)]);
  });

  test('"*" grants every provider without naming one', () => {
    expect(dev({ callers: [caller({ providers: ['*'] })] }).config.callers[0]?.providers).toEqual(['*']);
  });

  test('the same key given to two callers is refused, even when one gives it as a hash', () => {
    const issues = issuesIn('development', {
      callers: [caller({ name: 'billing', key: 'shared-key' }), caller({ name: 'reports', key: { sha256: sha256('shared-key').toString('hex') } })],
    });
    expect(issues).toEqual([expect.stringMatching(/^callers\[1\]\.keys\[0\]: .*billing/)]);
  });

  test('the same key from the environment and inline is refused', () => {
    const issues = issuesIn(
      'development',
      { callers: [caller({ name: 'billing', key: { env: 'K' } }), caller({ name: 'reports', key: undefined, keys: ['other', 'shared'] })] },
      { K: 'shared' },
    );
    expect(issues).toEqual([expect.stringMatching(/^callers\[1\]\.keys\[1\]: .*billing/)]);
  });
});

describe('clientSecret', () => {
  test('one secret becomes a list of one', () => {
    expect(oauth2(dev({ providers: { github: github({ clientSecret: 'only' }) } }), 'github').clientSecret.map((s) => s.reveal())).toEqual(['only']);
  });

  test('a list keeps its order, current secret first', () => {
    const loaded = dev({ providers: { github: github({ clientSecret: [{ env: 'NEW' }, 'old-inline'] }) } }, { NEW: 'new-secret' });
    expect(oauth2(loaded, 'github').clientSecret.map((s) => s.reveal())).toEqual(['new-secret', 'old-inline']);
  });

  test('an empty list is refused', () => {
    expect(issuesIn('development', { providers: { github: github({ clientSecret: [] }) } })).toEqual([
      expect.stringMatching(/^providers\.github\.clientSecret: /),
    ]);
  });

  test('secrets never appear when the configuration is serialised', () => {
    const loaded = dev({ providers: { github: github({ clientSecret: ['secret-one', 'secret-two'] }) } });
    const text = JSON.stringify(loaded.config);
    expect(text).not.toContain('secret-one');
    expect(text).not.toContain('secret-two');
  });
});

describe('OAuth 1.0a signature methods', () => {
  test('RSA-SHA1 without privateKey is refused at providers.<id>.privateKey', () => {
    expect(issuesIn('development', { providers: { twitter: twitter({ signatureMethod: 'RSA-SHA1' }) } })).toEqual([
      expect.stringMatching(/^providers\.twitter\.privateKey: .*RSA-SHA1/),
    ]);
  });

  test('RSA-SHA1 with a privateKey loads', () => {
    const loaded = dev({ providers: { twitter: twitter({ signatureMethod: 'RSA-SHA1', privateKey: { env: 'TW_KEY' } }) } }, { TW_KEY: 'pem' });
    expect(oauth1(loaded, 'twitter').privateKey?.reveal()).toBe('pem');
  });

  test.each(['HMAC-SHA1', 'HMAC-SHA256', 'PLAINTEXT'])('%s needs no privateKey', (signatureMethod) => {
    expect(oauth1(dev({ providers: { twitter: twitter({ signatureMethod }) } }), 'twitter').signatureMethod).toBe(signatureMethod);
  });
});

describe('environment overrides', () => {
  test('PORT overrides the file', () => {
    expect(dev({ server: { port: 8000 } }, { PORT: '9090' }).config.server.port).toBe(9090);
  });

  test('an invalid PORT is an error at server.port', () => {
    expect(issuesIn('development', {}, { PORT: 'http' })).toEqual([expect.stringMatching(/^server\.port: /)]);
    expect(issuesIn('development', {}, { PORT: '65536' })).toEqual([expect.stringMatching(/^server\.port: /)]);
  });

  test('HOST overrides the file and the mode default', () => {
    expect(dev({ server: { host: '127.0.0.2' } }, { HOST: '0.0.0.0' }).config.server.host).toBe('0.0.0.0');
    const { raw, env } = productionSetup();
    expect(prod(raw, { ...env, HOST: '10.0.0.5' }).config.server.host).toBe('10.0.0.5');
  });

  test('REDIS_URL overrides the file', () => {
    const loaded = dev({ redis: { url: 'redis://file-host:6379' } }, { REDIS_URL: 'redis://env-host:6380/2' });
    expect(loaded.config.redis.url?.reveal()).toBe('redis://env-host:6380/2');
    expect(loaded.config.redis.url?.origin).toBe('env');
  });

  test('without REDIS_URL the file\'s url is used', () => {
    expect(dev({ redis: { url: 'redis://file-host:6379' } }).config.redis.url?.reveal()).toBe('redis://file-host:6379');
  });

  test.each([
    ['debug', 'debug'],
    ['WARN', 'warn'],
    ['silent', 'silent'],
  ])('LOG_LEVEL %s sets the level %s', (value, level) => {
    expect(dev({}, { LOG_LEVEL: value }).logLevel).toBe(level);
  });

  test('an invalid LOG_LEVEL is an error naming LOG_LEVEL and the valid levels', () => {
    expect(issuesIn('development', {}, { LOG_LEVEL: 'verbose' })).toEqual([expect.stringMatching(/^LOG_LEVEL: .*fatal.*trace/)]);
  });

  test('TOKEN_VAULT_KEYRING as JSON overrides the file\'s keyring', () => {
    const loaded = dev({ keyring: JSON.parse(keyringJson('file-key')) as unknown }, { TOKEN_VAULT_KEYRING: keyringJson('env-key') });
    expect(loaded.keyring?.activeId).toBe('env-key');
    expect(loaded.config.keyring?.origin).toBe('env');
  });

  test('TOKEN_VAULT_KEYRING as JSON with surrounding whitespace is still JSON', () => {
    expect(dev({}, { TOKEN_VAULT_KEYRING: `\n  ${keyringJson('ws')}  \n` }).keyring?.activeId).toBe('ws');
  });

  test('TOKEN_VAULT_KEYRING as a path reads the keyring file', () => {
    const dir = freshDir('keyring-path');
    const file = join(dir, 'keyring.json');
    writeFileSync(file, keyringJson('from-path'));
    const loaded = dev({}, { TOKEN_VAULT_KEYRING: file });
    expect(loaded.keyring?.activeId).toBe('from-path');
    expect(loaded.config.keyring?.origin).toBe('file');
  });

  test('TOKEN_VAULT_KEYRING naming a missing file is an error at keyring naming the file', () => {
    expect(issuesIn('development', {}, { TOKEN_VAULT_KEYRING: '/nonexistent/keyring.json' })).toEqual([
      expect.stringMatching(/^keyring: .*\/nonexistent\/keyring\.json/),
    ]);
  });

  test('a keyring file given in the configuration is read relative to baseDir', () => {
    const dir = freshDir('keyring-relative');
    writeFileSync(join(dir, 'keyring.json'), keyringJson('relative'));
    expect(dev({ keyring: { file: './keyring.json' } }, {}, dir).keyring?.activeId).toBe('relative');
  });
});

describe('an invalid keyring is a ConfigError at keyring without key material', () => {
  test('key material of the wrong length (inline object)', () => {
    const material = randomBytes(31).toString('base64');
    const issues = issuesIn('development', { keyring: { active: 'k1', keys: { k1: material } } });
    expect(issues).toEqual([expect.stringMatching(/^keyring(\.keys\.k1|\.active)?: /)]);
    expect(issues.join('\n')).not.toContain(material);
  });

  test('an active key not in keys (TOKEN_VAULT_KEYRING JSON)', () => {
    const material = randomBytes(32).toString('base64');
    const issues = issuesIn('development', {}, { TOKEN_VAULT_KEYRING: JSON.stringify({ active: 'k2', keys: { k1: material } }) });
    expect(issues).toEqual([expect.stringMatching(/^keyring\.active: /)]);
    expect(issues.join('\n')).not.toContain(material);
  });

  test('keyring text that is not JSON', () => {
    const material = randomBytes(32).toString('base64');
    const issues = issuesIn('development', {}, { TOKEN_VAULT_KEYRING: `{"active":"k1","keys":{"k1":"${material}"` });
    expect(issues).toEqual([expect.stringMatching(/^keyring(\.keys\.k1|\.active)?: /)]);
    expect(issues.join('\n')).not.toContain(material);
  });

  test('a keyring file with material that is not base64', () => {
    const dir = freshDir('bad-keyring-file');
    const material = '!not-base64!'.repeat(4);
    writeFileSync(join(dir, 'keyring.json'), JSON.stringify({ active: 'k1', keys: { k1: material } }));
    const issues = issuesOf(() => dev({ keyring: { file: 'keyring.json' } }, {}, dir));
    expect(issues).toEqual([expect.stringMatching(/^keyring(\.keys\.k1|\.active)?: /)]);
    expect(issues.join('\n')).not.toContain(material);
  });
});

describe('production mode', () => {
  test('a configuration with a keyring, callers and secrets from the environment loads without warnings', () => {
    const { raw, env } = productionSetup();
    const loaded = prod(raw, env);
    expect(loaded.mode).toBe('production');
    expect(loaded.keyring?.activeId).toBe('k1');
    expect(loaded.warnings).toEqual([]);
  });

  test('refuses to start without a keyring, naming it', () => {
    const { raw, env } = productionSetup();
    delete raw.keyring;
    expect(issuesIn('production', raw, env)).toEqual([expect.stringMatching(/^keyring: .*production/)]);
  });

  test('refuses to start without callers, naming them', () => {
    const { raw, env } = productionSetup();
    delete raw.callers;
    expect(issuesIn('production', raw, env)).toEqual([expect.stringMatching(/^callers: .*production/)]);
  });

  test('an empty configuration names both missing pieces', () => {
    expect(issuesIn('production', {})).toEqual([expect.stringMatching(/^keyring: /), expect.stringMatching(/^callers: /)]);
  });

  test.each([
    ['providers.github.tokenUrl', { providers: { github: github({ clientSecret: { env: 'GITHUB_CLIENT_SECRET' }, tokenUrl: 'http://idp.example.com/token' }) } }],
    [
      'providers.github.revocationUrl',
      { providers: { github: github({ clientSecret: { env: 'GITHUB_CLIENT_SECRET' }, revocationUrl: 'http://idp.example.com/revoke' }) } },
    ],
    [
      'providers.twitter.accessTokenUrl',
      {
        providers: {
          github: github({ clientSecret: { env: 'GITHUB_CLIENT_SECRET' } }),
          twitter: twitter({ consumerSecret: { env: 'GITHUB_CLIENT_SECRET' }, accessTokenUrl: 'http://api.example.com/oauth/access_token' }),
        },
      },
    ],
    [
      'webhooks.subscribers[0].url',
      { webhooks: { subscribers: [subscriber({ url: 'http://hooks.internal/vault' })] } },
    ],
  ])('refuses a non-loopback http:// URL at %s', (path, over) => {
    const { raw, env } = productionSetup();
    const issues = issuesIn('production', { ...raw, ...over }, env);
    expect(issues).toEqual([expect.stringMatching(new RegExp(`^${path.replace(/[.[\]]/g, '\\$&')}: .*loopback`))]);
  });

  test('refuses an http URL whose scheme is written in capitals', () => {
    const { raw, env } = productionSetup();
    raw.providers = { github: github({ clientSecret: { env: 'GITHUB_CLIENT_SECRET' }, tokenUrl: 'HTTP://idp.example.com/token' }) };
    expect(issuesIn('production', raw, env)).toEqual([expect.stringMatching(/^providers\.github\.tokenUrl: .*loopback/)]);
  });

  test.each(['http://127.0.0.1:9000/token', 'http://127.8.9.10/token', 'http://localhost:4000/token', 'http://[::1]:4000/token'])(
    'accepts the loopback http URL %s',
    (tokenUrl) => {
      const { raw, env } = productionSetup();
      raw.providers = { github: github({ clientSecret: { env: 'GITHUB_CLIENT_SECRET' }, tokenUrl }) };
      expect(oauth2(prod(raw, env), 'github').tokenUrl).toBe(tokenUrl);
    },
  );

  test.each(['http://localhost.example.com/token', 'http://127.0.0.1.nip.io/token', 'http://10.0.0.1/token', 'http://0.0.0.0/token'])(
    'refuses the loopback look-alike %s',
    (tokenUrl) => {
      const { raw, env } = productionSetup();
      raw.providers = { github: github({ clientSecret: { env: 'GITHUB_CLIENT_SECRET' }, tokenUrl }) };
      expect(issuesIn('production', raw, env)).toEqual([expect.stringMatching(/^providers\.github\.tokenUrl: /)]);
    },
  );

  test('development accepts non-loopback http:// URLs', () => {
    expect(oauth2(dev({ providers: { github: github({ tokenUrl: 'http://idp.example.com/token' }) } }), 'github').tokenUrl).toBe(
      'http://idp.example.com/token',
    );
  });

  test('warns, without refusing, about inline secrets, naming their paths and not their values', () => {
    const loaded = prod({
      keyring: JSON.parse(keyringJson()) as unknown,
      callers: [caller({ key: 'inline-caller-key' })],
      providers: { github: github({ clientSecret: 'inline-client-secret' }), twitter: twitter({ consumerSecret: 'inline-consumer-secret' }) },
    });
    expect(loaded.warnings).toHaveLength(1);
    const [warning] = loaded.warnings;
    for (const path of ['keyring', 'callers[0].key', 'providers.github.clientSecret', 'providers.twitter.consumerSecret']) {
      expect(warning).toContain(path);
    }
    for (const value of ['inline-caller-key', 'inline-client-secret', 'inline-consumer-secret']) {
      expect(warning).not.toContain(value);
    }
  });

  test('a { sha256 } caller key is not an inline secret', () => {
    const { raw, env } = productionSetup();
    raw.callers = [caller({ key: { sha256: sha256('k').toString('hex') } })];
    expect(prod(raw, env).warnings).toEqual([]);
  });

  test('development does not warn about inline secrets', () => {
    expect(dev({ callers: [caller()], providers: { github: github() } }).warnings).toEqual([]);
  });
});

// redis.cluster and redis.sentinel, which this version once refused: test/unit/config/redis.test.ts.

describe('settings accepted but inert', () => {
  test('none are left: server.publicPort, connect and presets act, in both modes', () => {
    const acting: Raw = {
      server: { publicPort: 8443 },
      connect: { returnTo: ['https://app.example.com/integrations'] },
    };
    const provider = { preset: 'github', clientSecret: { env: 'GITHUB_CLIENT_SECRET' } };
    const { raw, env } = productionSetup();
    const loadedDev = dev({ ...acting, providers: { github: github(provider) } }, env);
    const loadedProd = prod({ ...raw, ...acting, providers: { github: github(provider) } }, env);
    for (const loaded of [loadedDev, loadedProd]) {
      expect(loaded.warnings).toEqual([]);
      expect(loaded.config.server.publicPort).toBe(8443);
    }
  });

  test('a configuration without them has no such warning; webhooks, revocationUrl and inboundWebhook now act', () => {
    expect(dev({ providers: { github: github() } }).warnings).toEqual([]);
    const acting = dev({
      webhooks: { subscribers: [subscriber()] },
      providers: { github: github({ revocationUrl: 'https://github.example/revoke', inboundWebhook: { verifier: 'github', secret: 'gh-hook-secret' } }) },
    });
    expect(acting.warnings).toEqual([]);
  });
});

describe('webhooks', () => {
  test('defaults: the Standard Webhooks retry schedule, a 10 s timeout, no subscribers', () => {
    const { webhooks } = dev({}).config;
    expect(webhooks).toEqual({ subscribers: [], retrySchedule: [0, 5, 300, 1800, 7200, 18000, 36000, 36000], timeoutSeconds: 10 });
  });

  test('a subscriber takes one secret or several (rotation), is named by its URL unless named, and keeps its filters', () => {
    const second = `whsec_${Buffer.alloc(24, 9).toString('base64')}`;
    const { subscribers } = dev({ webhooks: { subscribers: [subscriber(), subscriber({ name: 'billing', secret: undefined, secrets: [WHSEC, second], events: ['*'] })] } }).config.webhooks;
    expect(subscribers.map((s) => [s.name, s.secrets.map((secret) => secret.reveal()), s.events])).toEqual([
      ['https://hooks.example.com/vault', [WHSEC], ['token.*']],
      ['billing', [WHSEC, second], ['*']],
    ]);
  });

  test('an inbound webhook takes one secret or several; the verifier defaults to generic and the tolerance to 300 s', () => {
    const loaded = dev({ providers: { github: github({ inboundWebhook: { secrets: ['old', 'new'] } }) } });
    const { inboundWebhook } = oauth2(loaded, 'github');
    expect(inboundWebhook && { ...inboundWebhook, secrets: inboundWebhook.secrets.map((secret) => secret.reveal()) }).toEqual({
      verifier: 'generic',
      secrets: ['old', 'new'],
      toleranceSeconds: 300,
    });
  });
});

describe('loadConfig', () => {
  test('a YAML syntax error is reported with the file path', () => {
    const path = '/etc/token-vault/config.yaml';
    const issues = issuesOf(() =>
      loadConfig({ env: { TOKEN_VAULT_CONFIG: path }, cwd: '/', readFile: () => 'server:\n  port: [8080\nproviders: {}\n' }),
    );
    expect(issues.length).toBeGreaterThan(0);
    for (const issue of issues) expect(issue.startsWith(`${path}: `)).toBe(true);
  });

  test('a YAML syntax error does not echo the file\'s contents', () => {
    const path = '/etc/token-vault/config.yaml';
    const issues = issuesOf(() =>
      loadConfig({ env: { TOKEN_VAULT_CONFIG: path }, cwd: '/', readFile: () => 'keyring: { active: k1, keys: { k1: "s3cr3t-material" }\nx: [\n' }),
    );
    expect(issues.join('\n')).not.toContain('s3cr3t-material');
  });

  test('an unreadable file is reported with its path and the error code', () => {
    const issues = issuesOf(() =>
      loadConfig({
        env: { TOKEN_VAULT_CONFIG: '/etc/token-vault/missing.yaml' },
        cwd: '/',
        readFile: () => {
          throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
        },
      }),
    );
    expect(issues).toEqual([expect.stringMatching(/^\/etc\/token-vault\/missing\.yaml: .*ENOENT/)]);
  });

  test('a file whose top level is not a mapping is refused', () => {
    const issues = issuesOf(() => loadConfig({ env: { TOKEN_VAULT_CONFIG: '/c.yaml' }, cwd: '/', readFile: () => '- server\n- redis\n' }));
    expect(issues).toEqual([expect.stringMatching(/^\/c\.yaml: .*mapping/)]);
  });

  test('an empty file gives the defaults', () => {
    const loaded = loadConfig({ env: { TOKEN_VAULT_CONFIG: '/c.yaml' }, cwd: '/', readFile: () => '' });
    expect(loaded.path).toBe('/c.yaml');
    expect(loaded.config.server.port).toBe(8080);
  });

  test('schema errors in a file name the field path', () => {
    const issues = issuesOf(() =>
      loadConfig({
        env: { TOKEN_VAULT_CONFIG: '/c.yaml' },
        cwd: '/',
        readFile: () => 'providers:\n  github:\n    type: oauth2\n    clientId: x\n    clientSecret: y\n    tokenUrl: not-a-url\n',
      }),
    );
    expect(issues).toEqual([expect.stringMatching(/^providers\.github\.tokenUrl: /)]);
  });

  test('{ file } references in the YAML are read relative to the file\'s folder, TOKEN_VAULT_CONFIG relative to cwd', () => {
    const files: Record<string, string> = {
      '/srv/vault/conf/token-vault.yaml': 'keyring: { file: keyring.json }\nserver:\n  port: 9000\n',
      '/srv/vault/conf/keyring.json': keyringJson('from-yaml'),
    };
    const read: string[] = [];
    const loaded = loadConfig({
      env: { TOKEN_VAULT_CONFIG: 'conf/token-vault.yaml' },
      cwd: '/srv/vault',
      readFile: (path) => {
        read.push(path);
        const text = files[path];
        if (text === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
        return text;
      },
    });
    expect(read).toEqual(['/srv/vault/conf/token-vault.yaml', '/srv/vault/conf/keyring.json']);
    expect(loaded.path).toBe('/srv/vault/conf/token-vault.yaml');
    expect(loaded.keyring?.activeId).toBe('from-yaml');
    expect(loaded.config.server.port).toBe(9000);
  });

  test('NODE_ENV=production selects production mode, anything else development', () => {
    const readFile = () => 'server: { port: 8081 }\n';
    expect(loadConfig({ env: { TOKEN_VAULT_CONFIG: '/c.yaml' }, cwd: '/', readFile }).mode).toBe('development');
    expect(loadConfig({ env: { TOKEN_VAULT_CONFIG: '/c.yaml', NODE_ENV: 'test' }, cwd: '/', readFile }).mode).toBe('development');
    const issues = issuesOf(() => loadConfig({ env: { TOKEN_VAULT_CONFIG: '/c.yaml', NODE_ENV: 'production' }, cwd: '/', readFile }));
    expect(issues).toEqual([expect.stringMatching(/^keyring: /), expect.stringMatching(/^callers: /)]);
  });

  test('with no file at all, development runs on defaults', () => {
    const dir = freshDir('no-config');
    const loaded = loadConfig({ env: {}, cwd: dir });
    expect(loaded.path).toBeUndefined();
    expect(loaded.config.server.port).toBe(8080);
  });
});

describe('findConfigFile', () => {
  test('TOKEN_VAULT_CONFIG wins over ./token-vault.yaml, resolved against cwd', () => {
    const dir = freshDir('find-env');
    writeFileSync(join(dir, 'token-vault.yaml'), '{}\n');
    expect(findConfigFile({ TOKEN_VAULT_CONFIG: 'other/config.yaml' }, dir, 'development')).toBe(join(dir, 'other/config.yaml'));
    expect(findConfigFile({ TOKEN_VAULT_CONFIG: '/abs/config.yaml' }, dir, 'production')).toBe('/abs/config.yaml');
  });

  test('./token-vault.yaml comes before the example, in both modes', () => {
    const dir = freshDir('find-local');
    writeFileSync(join(dir, 'token-vault.yaml'), '{}\n');
    writeFileSync(join(dir, EXAMPLE_CONFIG_FILE), '{}\n');
    expect(findConfigFile({}, dir, 'development')).toBe(join(dir, 'token-vault.yaml'));
    expect(findConfigFile({}, dir, 'production')).toBe(join(dir, 'token-vault.yaml'));
  });

  test('the example is used in development only', () => {
    const dir = freshDir('find-example');
    writeFileSync(join(dir, EXAMPLE_CONFIG_FILE), '{}\n');
    expect(EXAMPLE_CONFIG_FILE).toBe('token-vault.example.yaml');
    expect(findConfigFile({}, dir, 'development')).toBe(join(dir, EXAMPLE_CONFIG_FILE));
    expect(findConfigFile({}, dir, 'production')).toBeUndefined();
  });

  test('no file at all gives undefined', () => {
    const dir = freshDir('find-none');
    expect(findConfigFile({}, dir, 'development')).toBeUndefined();
    expect(findConfigFile({}, dir, 'production')).toBeUndefined();
  });
});

describe('the repository\'s token-vault.example.yaml', () => {
  function checkoutWithExample(): string {
    const dir = freshDir('example-checkout');
    copyFileSync(join(REPO_ROOT, EXAMPLE_CONFIG_FILE), join(dir, EXAMPLE_CONFIG_FILE));
    return dir;
  }

  test('loads in development mode with an empty environment (what `npm run dev` uses)', () => {
    const dir = checkoutWithExample();
    const loaded = loadConfig({ env: {}, cwd: dir });
    expect(loaded.path).toBe(join(dir, EXAMPLE_CONFIG_FILE));
    expect(loaded.mode).toBe('development');
    expect(loaded.keyring).toBeUndefined();
    expect(loaded.config.server).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(loaded.config.redis.keyPrefix).toBe('tv:');
    expect(Object.keys(loaded.config.providers).sort()).toEqual(['github', 'google', 'twitter']);
    expect(oauth2(loaded, 'github').clientAuth).toBe('client_secret_post');
    expect(oauth1(loaded, 'twitter').signatureMethod).toBe('HMAC-SHA1');
    expect(loaded.warnings).toEqual([]);
  });

  test('is refused in production, which needs a keyring and callers', () => {
    const dir = checkoutWithExample();
    const issues = issuesOf(() => loadConfig({ env: { NODE_ENV: 'production' }, cwd: dir }));
    expect(issues).toEqual(expect.arrayContaining([expect.stringMatching(/^keyring: /), expect.stringMatching(/^callers: /)]));
  });
});
