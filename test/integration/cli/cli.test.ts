import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { parse as parseYaml, stringify } from 'yaml';
import { resolveConfig } from '../../../src/config/load';
import { Keyring } from '../../../src/crypto/keyring';
import { startVault, TEST_PROVIDERS, type TestVault } from '../../helpers/app';
import { freePort, RedisServer } from '../../helpers/redis-server';
import { REPO_ROOT, vaultEnv } from '../../helpers/vault-process';

/**
 * The token-vault CLI as operators run it: its own process (`node --import tsx src/cli/main.ts`,
 * what `npm run cli` runs), in a clean environment, against files on disk and a real vault
 * listening on loopback over a real Redis.
 */

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: REPO_ROOT,
      env: vaultEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tv-cli-'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('usage', () => {
  test('--help lists the commands; each command and `keys reload` has its own --help; unknown or missing commands print usage on stderr and exit 2', async () => {
    const [top, keygen, apikey, keys, reload, rewrap, checkConfig, unknown, none, badOption] = await Promise.all([
      cli(['--help']),
      cli(['keygen', '--help']),
      cli(['apikey', '--help']),
      cli(['keys', '--help']),
      cli(['keys', 'reload', '--help']),
      cli(['rewrap', '-h']),
      cli(['check-config', '--help']),
      cli(['rotate-everything']),
      cli([]),
      cli(['keygen', '--size', '64']),
    ]);
    expect(top.code).toBe(0);
    for (const name of ['keygen', 'apikey', 'keys', 'rewrap', 'check-config', 'dev-certs']) expect(top.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    for (const name of ['TOKEN_VAULT_CA', 'TOKEN_VAULT_CLIENT_CERT, TOKEN_VAULT_CLIENT_KEY']) expect(top.stdout).toContain(name);
    for (const [run, name] of [[keygen, 'keygen'], [apikey, 'apikey'], [keys, 'keys'], [reload, 'keys'], [rewrap, 'rewrap'], [checkConfig, 'check-config']] as const) {
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^Usage: token-vault ${name}`));
    }
    expect(reload.stdout).toContain('keys reload');
    expect(rewrap.stdout).toContain('--no-follow');
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toContain('unknown command "rotate-everything"');
    expect(unknown.stderr).toContain('Usage: token-vault <command>');
    expect(none).toMatchObject({ code: 2, stdout: '' });
    expect(none.stderr).toContain('Usage: token-vault <command>');
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toContain("Unknown option '--size'");
  });
});

describe('keygen', () => {
  test('prints a new key entry: id k<UTC yyyymmddThhmm> and 32 random bytes of base64', async () => {
    const before = new Date();
    const run = await cli(['keygen']);
    expect(run.code).toBe(0);
    const entry = JSON.parse(run.stdout) as { id: string; key: string };
    expect(Object.keys(entry).sort()).toEqual(['id', 'key']);
    expect(entry.id).toMatch(/^k\d{8}T\d{4}$/);
    expect(entry.id.slice(1, 9)).toBe(before.toISOString().slice(0, 10).replaceAll('-', ''));
    expect(Buffer.from(entry.key, 'base64')).toHaveLength(32);
    // It is a usable keyring entry.
    expect(Keyring.parse({ active: entry.id, keys: { [entry.id]: entry.key } }).activeId).toBe(entry.id);
  });

  test('--keyring creates the file (mode 0600, the key active), then adds keys leaving active alone unless --activate; duplicate and malformed ids are refused', async () => {
    const dir = join(work, 'keygen');
    mkdirSync(dir);
    const file = join(dir, 'keyring.json');
    const created = await cli(['keygen', '--id', 'k1', '--keyring', file]);
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toEqual({ id: 'k1', keyring: file, active: 'k1', created: true });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const first = JSON.parse(readFileSync(file, 'utf8')) as { active: string; keys: Record<string, string> };
    expect(Keyring.parse(readFileSync(file, 'utf8')).ids()).toEqual(['k1']);
    // The key material goes to the file only.
    expect(created.stdout + created.stderr).not.toContain(first.keys.k1);

    const added = await cli(['keygen', '--id', 'k2', '--keyring', file]);
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ id: 'k2', active: 'k1', created: false });
    expect(added.stderr).toContain('the active key is still "k1"');
    let ring = Keyring.parse(readFileSync(file, 'utf8'));
    expect([ring.activeId, ring.ids()]).toEqual(['k1', ['k1', 'k2']]);
    expect((JSON.parse(readFileSync(file, 'utf8')) as typeof first).keys.k1).toBe(first.keys.k1);

    const activated = await cli(['keygen', '--keyring', file, '--activate']);
    expect(activated.code).toBe(0);
    const newId = (JSON.parse(activated.stdout) as { id: string }).id;
    ring = Keyring.parse(readFileSync(file, 'utf8'));
    expect([ring.activeId, ring.ids()]).toEqual([newId, ['k1', 'k2', newId]]);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const content = readFileSync(file, 'utf8');
    const duplicate = await cli(['keygen', '--id', 'k2', '--keyring', file]);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain('already holds a key "k2"');
    const malformed = await cli(['keygen', '--id', 'k 3/x', '--keyring', file]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('^[A-Za-z0-9_-]{1,32}$');
    expect(readFileSync(file, 'utf8')).toBe(content);
    // Nothing but the keyring in the folder: the temp files were renamed over it.
    expect(readdirSync(dir)).toEqual(['keyring.json']);
  });

  test('a keyring file that is not a valid keyring is refused and left unchanged', async () => {
    const file = join(work, 'broken-keyring.json');
    writeFileSync(file, '{"active":"k1","keys":{"k1":"c2hvcnQ="}}');
    const run = await cli(['keygen', '--id', 'k2', '--keyring', file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('keys.k1: must decode to exactly 32 bytes');
    expect(readFileSync(file, 'utf8')).toBe('{"active":"k1","keys":{"k1":"c2hvcnQ="}}');
    rmSync(file);
  });
});

describe('apikey', () => {
  test('prints a tv_ key, its sha256, and a callers: entry the vault accepts that holds only the sha256', async () => {
    const run = await cli(['apikey', '--name', 'billing']);
    expect(run.code).toBe(0);
    const key = /^key: +(\S+)$/m.exec(run.stdout)?.[1];
    const sha256 = /^sha256: +(\S+)$/m.exec(run.stdout)?.[1];
    expect(key).toMatch(/^tv_[A-Za-z0-9_-]{43}$/);
    expect(sha256).toBe(createHash('sha256').update(key!).digest('hex'));

    const snippet = run.stdout.slice(run.stdout.indexOf('callers:'));
    expect(snippet).not.toContain(key);
    const raw = parseYaml(snippet) as Record<string, unknown>;
    const loaded = resolveConfig({ ...raw, providers: structuredClone(TEST_PROVIDERS) }, { env: {}, mode: 'development', baseDir: work });
    expect(loaded.config.callers).toHaveLength(1);
    expect(loaded.config.callers[0]!.name).toBe('billing');
    expect(loaded.config.callers[0]!.keys[0]!.sha256.toString('hex')).toBe(sha256);
  });
});

describe('check-config', () => {
  const envSecret = `env-secret-${randomBytes(8).toString('hex')}`;
  const inlineSecret = `inline-secret-${randomBytes(8).toString('hex')}`;

  function writeConfig(name: string, config: Record<string, unknown>): string {
    const file = join(work, name);
    writeFileSync(file, stringify(config));
    return file;
  }

  test('a good production file: exit 0, "ok" and the warnings, naming fields but never printing a secret', async () => {
    writeFileSync(join(work, 'check-keyring.json'), Keyring.generateJson('prod-1'), { mode: 0o600 });
    const file = writeConfig('good.yaml', {
      keyring: { file: './check-keyring.json' },
      callers: [{ name: 'backend', keys: [{ sha256: 'a'.repeat(64) }], scopes: ['tokens:read'], providers: ['*'] }],
      providers: {
        github: { type: 'oauth2', clientId: 'gh', clientSecret: { env: 'GH_SECRET' }, tokenUrl: 'https://github.com/login/oauth/access_token' },
        google: { type: 'oauth2', clientId: 'go', clientSecret: inlineSecret, tokenUrl: 'https://oauth2.googleapis.com/token' },
      },
    });
    const env = { NODE_ENV: 'production', GH_SECRET: envSecret };
    const [explicit, fromEnv] = await Promise.all([cli(['check-config', file], env), cli(['check-config'], { ...env, TOKEN_VAULT_CONFIG: file })]);
    for (const run of [explicit, fromEnv]) {
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^ok: .*good\.yaml \(production mode\)$/m);
      expect(run.stdout).toMatch(/^warning: inline secrets .*providers\.google\.clientSecret/m);
      for (const secret of [envSecret, inlineSecret]) expect(run.stdout + run.stderr).not.toContain(secret);
    }
  });

  test('a bad file: exit 1 and every issue with the path of its field, never a secret value', async () => {
    const file = writeConfig('bad.yaml', {
      callers: [{ name: 'backend', key: inlineSecret, scopes: ['tokens:read'], providers: ['*'] }],
      providers: {
        github: { type: 'oauth2', clientId: 'gh', clientSecret: inlineSecret, tokenUrl: 'ftp://example.com/token' },
        google: { type: 'oauth2', clientId: 'go', clientSecret: { env: 'MISSING_GOOGLE_SECRET' }, tokenUrl: 'https://oauth2.googleapis.com/token' },
      },
    });
    const run = await cli(['check-config', file]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`invalid configuration in ${file} (development mode)`);
    expect(run.stderr).toMatch(/^ {2}- providers\.github\.tokenUrl: /m);
    expect(run.stderr).toMatch(/^ {2}- providers\.google\.clientSecret\[0\]: environment variable MISSING_GOOGLE_SECRET is not set$/m);
    expect(run.stderr).not.toContain(inlineSecret);
  });

  test('a file that does not exist: exit 1, naming it', async () => {
    const run = await cli(['check-config', join(work, 'nope.yaml')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('nope.yaml: cannot read (ENOENT)');
  });
});

describe('keys and rewrap against a running vault', () => {
  let redis: RedisServer;
  let vault: TestVault;
  let server: Server;
  let url: string;
  let keyringFile: string;
  const material = { k1: randomBytes(32).toString('base64'), k2: randomBytes(32).toString('base64') };
  const USERS = ['cli-1', 'cli-2', 'cli-3'];

  function writeKeyring(active: string, ids: (keyof typeof material)[]): void {
    writeFileSync(keyringFile, JSON.stringify({ active, keys: Object.fromEntries(ids.map((id) => [id, material[id]])) }));
  }
  const admin = () => ({ TOKEN_VAULT_URL: url, TOKEN_VAULT_ADMIN_KEY: vault.keys.admin });
  const keyStatus = async () =>
    (await request(vault.app).get('/admin/keys').set('Authorization', vault.auth(vault.keys.admin))).body as { active: string; keys: { id: string; records: number }[] };

  beforeAll(async () => {
    redis = await RedisServer.start();
    keyringFile = join(work, 'vault-keyring.json');
    writeKeyring('k1', ['k1']);
    vault = await startVault({ redis, config: (standard) => ({ ...standard, keyring: { file: keyringFile } }) });
    server = vault.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const user of USERS) {
      const put = await request(vault.app).put(`/tokens/${user}/github`).set('Authorization', vault.auth(vault.keys.writer)).send({ type: 'oauth2', access_token: `at-${user}` });
      expect(put.status).toBe(201);
    }
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await vault.close();
    await redis.stop();
  });

  test('keys prints each key with its records, whether it is active, and the replicas holding it', async () => {
    const run = await cli(['keys'], admin());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^active key: k1$/m);
    expect(run.stdout).toMatch(/^ID +RECORDS +ACTIVE +REPLICAS$/m);
    expect(run.stdout).toMatch(/^k1 +3 +yes +\S+/m);
    expect(run.stdout + run.stderr).not.toContain(vault.keys.admin);
  });

  test('keys reload with a keyring that drops a key still in use prints the 409 refusal and its details, exit 1', async () => {
    writeKeyring('k2', ['k2']);
    const run = await cli(['keys', 'reload'], admin());
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('key_in_use: keyring reload refused, the old keyring stays in force');
    expect(run.stderr).toMatch(/^ {2}- k1: 3 records are sealed under it$/m);
    expect((await keyStatus()).active).toBe('k1');
  });

  test('rotation from the CLI: keys reload activates k2, rewrap follows the job to done and exits 0, then k1 protects 0 records', async () => {
    writeKeyring('k2', ['k1', 'k2']);
    const reload = await cli(['keys', 'reload'], admin());
    expect(reload.code).toBe(0);
    expect(reload.stdout).toMatch(/^active key: k2$/m);
    expect(reload.stdout).toMatch(/^k2 +0 +yes +\S+/m);

    const rewrap = await cli(['rewrap'], admin());
    expect(rewrap.code).toBe(0);
    expect(rewrap.stderr).toMatch(/^rewrap job [0-9a-f-]{36}: 3 records to re-wrap under "k2"/m);
    // stderr is a pipe, not a terminal: plain progress lines, no bar redrawn with \r.
    expect(rewrap.stderr).toMatch(/^100% 3\/3 done, \d+\/s, ETA 0s$/m);
    expect(rewrap.stderr).not.toContain('\r');
    expect(rewrap.stdout).toMatch(/^rewrap job [0-9a-f-]{36} done in \S+: 3 re-wrapped under "k2", 0 failed, 0 skipped/m);

    const status = await keyStatus();
    expect(status.active).toBe('k2');
    expect(status.keys).toEqual([expect.objectContaining({ id: 'k1', records: 0 }), expect.objectContaining({ id: 'k2', records: 3 })]);
    const read = await request(vault.app).get('/tokens/cli-2/github').set('Authorization', vault.auth(vault.keys.reader));
    expect([read.status, read.body.access_token]).toEqual([200, 'at-cli-2']);
  });

  test('rewrap --no-follow prints the job id and exits 0 at once', async () => {
    const run = await cli(['rewrap', '--no-follow'], admin());
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const job = await request(vault.app).get(`/admin/rewrap/${id}`).set('Authorization', vault.auth(vault.keys.admin));
    expect(job.status).toBe(200);
    expect(job.body.job).toMatchObject({ id, target: 'k2', total: 0 });
  });

  test('a wrong admin key: exit 1 with the API error code and message, and the key is never echoed', async () => {
    const wrong = `tv_wrong_${randomBytes(16).toString('hex')}`;
    const [keys, rewrap] = await Promise.all([cli(['keys', '--url', url, '--key', wrong]), cli(['rewrap'], { TOKEN_VAULT_URL: url, TOKEN_VAULT_ADMIN_KEY: wrong })]);
    for (const run of [keys, rewrap]) {
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^token-vault (keys|rewrap): unauthorized: the API key is not valid$/m);
      expect(run.stdout + run.stderr).not.toContain(wrong);
    }
    const noAdminScope = await cli(['keys'], { TOKEN_VAULT_URL: url, TOKEN_VAULT_ADMIN_KEY: vault.keys.writer });
    expect(noAdminScope.code).toBe(1);
    expect(noAdminScope.stderr).toContain('forbidden: ');
  });

  test('no vault listening: exit 1 saying the vault is unreachable', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const [keys, reload, rewrap] = await Promise.all([
      cli(['keys'], { TOKEN_VAULT_URL: closed, TOKEN_VAULT_ADMIN_KEY: vault.keys.admin }),
      cli(['keys', 'reload', '--url', closed], { TOKEN_VAULT_ADMIN_KEY: vault.keys.admin }),
      cli(['rewrap', '--url', closed], { TOKEN_VAULT_ADMIN_KEY: vault.keys.admin }),
    ]);
    for (const run of [keys, reload, rewrap]) {
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`the vault at ${closed} is unreachable (ECONNREFUSED)`);
    }
  });

  test('no admin key at all: exit 2, saying where the key comes from', async () => {
    const run = await cli(['keys'], { TOKEN_VAULT_URL: url });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('no admin API key: set TOKEN_VAULT_ADMIN_KEY');
  });
});
