import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { freePort, RedisServer } from '../../helpers/redis-server';
import { buildVault, http, REPO_ROOT, VaultProcess, vaultEnv, type BuiltVault } from '../../helpers/vault-process';

/**
 * The image (DESIGN §10). No Docker engine runs where these tests run, so the Dockerfile is
 * checked as text for the rules that matter, and its production stage is re-enacted: the
 * final stage's own `npm ci` line in an empty folder, a built dist/ beside it, and
 * `node dist/main.js` started with a production configuration against a real Redis. If the
 * runtime needed a devDependency, the vault would not start there.
 */

const execFileAsync = promisify(execFile);
const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8');
const packageJson = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  engines: { node: string };
  dependencies: Record<string, string>;
};

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Instructions with continuation lines joined; comments and blank lines dropped. */
function instructionsOf(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (pending === '' && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (pending !== '' && trimmed.startsWith('#')) continue; // a comment inside a continued instruction
    if (trimmed.endsWith('\\')) {
      pending += `${trimmed.slice(0, -1).trim()} `;
      continue;
    }
    const whole = `${pending}${trimmed}`;
    pending = '';
    const [keyword = '', ...rest] = whole.split(/\s+/);
    instructions.push({ keyword: keyword.toUpperCase(), args: rest.join(' ') });
  }
  return instructions;
}

function stagesOf(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of instructionsOf(text)) {
    if (instruction.keyword === 'FROM') {
      const [image = '', as, name] = instruction.args.split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${instruction.keyword} before the first FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

/** A RUN's command without its --mount/--network flags, split on &&. */
function commandsOf(run: Instruction): string[] {
  const command = run.args.replace(/^(--[a-z]+=\S+\s+)+/, '');
  return command.split('&&').map((part) => part.trim());
}

const stages = stagesOf(dockerfile);
const final = stages.at(-1)!;
const finalOf = (keyword: string) => final.instructions.filter((i) => i.keyword === keyword);

describe('Dockerfile', () => {
  it('has a build stage and a production stage from the same specific Node 20 bookworm-slim tag', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) {
      // A specific minor (node:20.20-...), never latest or a bare major: rebuilds stay reproducible.
      expect(stage.image).toMatch(/^node:20\.\d+(\.\d+)?-bookworm-slim$/);
    }
    expect(new Set(stages.map((s) => s.image)).size).toBe(1);
    // The base's Node satisfies package.json's engines (">=20.15").
    const [, minor] = /^node:20\.(\d+)/.exec(final.image)!;
    const [, engineMinor] = /^>=20\.(\d+)/.exec(packageJson.engines.node)!;
    expect(Number(minor)).toBeGreaterThanOrEqual(Number(engineMinor));
  });

  it('builds with every dependency in the build stage: npm ci, then npm run build', () => {
    const build = stages[0]!;
    const commands = build.instructions.filter((i) => i.keyword === 'RUN').flatMap(commandsOf);
    const ci = commands.findIndex((c) => /^npm ci\b/.test(c));
    const compile = commands.findIndex((c) => c === 'npm run build');
    expect(ci).toBeGreaterThanOrEqual(0);
    expect(commands[ci]).not.toMatch(/--omit/);
    expect(compile).toBeGreaterThan(ci);
  });

  it('installs only runtime dependencies in the production stage, without install scripts', () => {
    const commands = finalOf('RUN').flatMap(commandsOf);
    const ci = commands.filter((c) => /^npm ci\b/.test(c));
    expect(ci).toHaveLength(1);
    expect(ci[0]).toMatch(/\s--omit=dev(\s|$)/);
    expect(ci[0]).toMatch(/\s--ignore-scripts(\s|$)/);
    // No compiler and no devDependency in the final image: dist/ comes from the build stage.
    expect(commands.some((c) => /npm (run|install|i)\b/.test(c))).toBe(false);
    expect(finalOf('COPY').map((c) => c.args)).toContainEqual(expect.stringMatching(/^--from=build \/app\/dist \.\/dist$/));
  });

  it('copies named files only, never the whole build context, and gives nothing to the node user', () => {
    for (const stage of stages) {
      for (const copy of stage.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
        expect(copy.keyword).toBe('COPY');
        expect(copy.args).not.toMatch(/^(\S+\s+)*\.\s+\S+$/); // COPY . <dest>
      }
    }
    // Files stay root's: the process cannot rewrite its own code.
    for (const instruction of final.instructions) {
      expect(instruction.args).not.toMatch(/--chown|--chmod|\bchown\b|\bchmod\b/);
    }
  });

  it('runs as the non-root node user in production mode, on port 8080, with CMD ["node","dist/main.js"]', () => {
    const users = finalOf('USER');
    expect(users.at(-1)?.args).toBe('node');
    // USER comes after every RUN, so nothing in the image is written as node.
    const lastRun = final.instructions.map((i) => i.keyword).lastIndexOf('RUN');
    expect(final.instructions.indexOf(users.at(-1)!)).toBeGreaterThan(lastRun);
    const env = finalOf('ENV').map((i) => i.args).join(' ');
    expect(env).toMatch(/\bNODE_ENV=production\b/);
    expect(env).toMatch(/\bTOKEN_VAULT_CONFIG=\/etc\/token-vault\/token-vault\.yaml\b/);
    expect(finalOf('EXPOSE').map((i) => i.args)).toEqual(['8080']);
    const cmd = finalOf('CMD');
    expect(cmd).toHaveLength(1);
    expect(JSON.parse(cmd[0]!.args)).toEqual(['node', 'dist/main.js']);
    expect(finalOf('ENTRYPOINT')).toHaveLength(0);
  });

  it('bakes in no secret: no build argument, no secret-looking variable, no keyring', () => {
    const all = stages.flatMap((s) => s.instructions);
    expect(all.filter((i) => i.keyword === 'ARG')).toEqual([]);
    const secretName = /(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|_KEY\b|KEYRING|CREDENTIAL|AUTH)/i;
    for (const env of all.filter((i) => i.keyword === 'ENV')) {
      for (const [, name] of env.args.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=/g)) {
        // TOKEN_VAULT_CONFIG is a path to the (secret-free) configuration file.
        if (name === 'TOKEN_VAULT_CONFIG') continue;
        expect(name).not.toMatch(secretName);
      }
    }
    expect(dockerfile).not.toMatch(/^\s*(COPY|ADD)\s.*(keyring|\.pem|\.key|\.env)\b/im);
    // A registry token belongs in a BuildKit secret mount, never in a layer.
    expect(dockerfile).not.toMatch(/_authToken|NPM_TOKEN|\.npmrc/);
  });

  it('has a health check that needs no curl or wget', () => {
    const checks = finalOf('HEALTHCHECK');
    expect(checks.length).toBeLessThanOrEqual(1);
    for (const check of checks) {
      expect(check.args).not.toMatch(/\b(curl|wget)\b/);
      expect(check.args).toMatch(/CMD \["node", "-e",/);
    }
  });
});

/**
 * .dockerignore, as Docker reads it (moby/patternmatcher): each line a filepath.Match pattern
 * with `**`, `!` re-includes, the last matching line wins, and a pattern that matches a folder
 * excludes everything in it.
 */
function ignoreRules(text: string): { negate: boolean; pattern: RegExp }[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const negate = line.startsWith('!');
      const glob = (negate ? line.slice(1) : line).replace(/^\/+/, '').replace(/\/+$/, '');
      let source = '';
      for (let i = 0; i < glob.length; i++) {
        const c = glob[i]!;
        if (glob.startsWith('**/', i)) {
          source += '(?:.*/)?';
          i += 2;
        } else if (glob.startsWith('**', i)) {
          source += '.*';
          i += 1;
        } else if (c === '*') source += '[^/]*';
        else if (c === '?') source += '[^/]';
        else source += c.replace(/[.+^${}()|\\]/g, '\\$&');
      }
      return { negate, pattern: new RegExp(`^${source}$`) };
    });
}

const rules = ignoreRules(dockerignore);

function excluded(path: string): boolean {
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let result = false;
  for (const rule of rules) {
    if (candidates.some((candidate) => rule.pattern.test(candidate))) result = !rule.negate;
  }
  return result;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('.dockerignore', () => {
  it.each([
    '.data/keyring.json',
    '.data/dev-admin-key',
    '.data/redis/appendonly.aof',
    'keyring.json',
    'keyring-prod.json',
    'ops/keyring.json',
    'keyrings/k2.pem',
    'keyrings/k2.json',
    '.data/certs/server.key',
    'certs/ca.pem',
    'client.crt',
    'token-vault.yaml',
    '.env',
    '.env.production',
    'prod.env',
    '.npmrc',
    'node_modules/express/package.json',
    'dist/main.js',
    '.git/HEAD',
    'coverage/lcov.info',
    'bench/results.json',
    'test/unit/config/load.test.ts',
    'vault.log',
  ])('keeps %s out of the build context', (path) => {
    expect(excluded(path)).toBe(true);
  });

  it('keeps every file the Dockerfile copies from the context, and all of src/', () => {
    const copied = stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src']));
    for (const source of copied) {
      expect(existsSync(join(REPO_ROOT, source))).toBe(true);
      expect(excluded(source)).toBe(false);
    }
    const src = filesUnder(join(REPO_ROOT, 'src')).map((file) => relative(REPO_ROOT, file).split(sep).join('/'));
    expect(src.filter(excluded)).toEqual([]);
  });
});

describe('the production stage, re-enacted without Docker', () => {
  let root: string;
  let app: string;
  let built: BuiltVault | undefined;
  let redis: RedisServer;
  let etc: string;
  const callerKey = randomBytes(24).toString('base64url');

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'tv-image-'));
    app = join(root, 'app');
    etc = join(root, 'etc', 'token-vault');
    mkdirSync(app);
    // Only the files the final stage copies before npm ci.
    for (const file of ['package.json', 'package-lock.json']) cpSync(join(REPO_ROOT, file), join(app, file));
    const [ci] = finalOf('RUN').flatMap(commandsOf).filter((c) => /^npm ci\b/.test(c));
    const args = ci!.split(/\s+/).slice(1);
    // The install and the compile run side by side. --prefer-offline: packages come from npm's
    // local cache when it has them.
    const install = execFileAsync('npm', [...args, '--prefer-offline'], { cwd: app, env: { ...process.env, NODE_ENV: 'production' } });
    const [installed, compiled] = await Promise.allSettled([install, buildVault()]);
    if (compiled.status === 'fulfilled') built = compiled.value; // removed in afterAll either way
    if (installed.status === 'rejected') throw installed.reason;
    if (compiled.status === 'rejected') throw compiled.reason;
    cpSync(dirname(built!.mainJs), join(app, 'dist'), { recursive: true });
    redis = await RedisServer.start();
    mkdirSync(join(etc, 'keyring'), { recursive: true });
    writeFileSync(join(etc, 'keyring', 'keyring.json'), JSON.stringify({ active: 'k1', keys: { k1: randomBytes(32).toString('base64') } }));
    writeFileSync(join(etc, 'github-client-secret'), `${createHash('sha256').update('github').digest('hex')}\n`);
    // No inline secret: the vault would warn about it in production.
    writeFileSync(
      join(etc, 'token-vault.yaml'),
      [
        'redis: { url: { env: REDIS_URL }, keyPrefix: "tv:" }',
        'callers:',
        '  - { name: app, keys: [{ env: APP_API_KEY }], scopes: [tokens:read, tokens:write], providers: ["*"] }',
        'providers:',
        `  github: { preset: github, clientId: Iv1.example, clientSecret: { file: ${join(etc, 'github-client-secret')} } }`,
        '',
      ].join('\n'),
    );
  }, 180_000);

  afterAll(async () => {
    built?.remove();
    await redis?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('holds every runtime dependency and no devDependency', () => {
    const installed = readdirSync(join(app, 'node_modules'));
    for (const name of Object.keys(packageJson.dependencies)) expect(installed).toContain(name.split('/')[0]);
    for (const devOnly of ['typescript', 'jest', 'ts-jest', 'tsx', 'eslint', 'oidc-provider', 'autocannon', 'ajv']) {
      expect(installed).not.toContain(devOnly);
    }
    // Nothing above the app folder can lend it a module it lacks.
    for (let dir = root; dir !== dirname(dir); dir = dirname(dir)) expect(existsSync(join(dir, 'node_modules'))).toBe(false);
    expect(existsSync('/node_modules')).toBe(false);
  });

  it('starts node dist/main.js in production mode, answers /readyz, stores and reveals a token, and drains on SIGTERM', async () => {
    const port = await freePort();
    const env = vaultEnv({
      HOME: root,
      NODE_ENV: 'production',
      PORT: String(port),
      HOST: '127.0.0.1',
      TOKEN_VAULT_CONFIG: join(etc, 'token-vault.yaml'),
      TOKEN_VAULT_KEYRING: join(etc, 'keyring', 'keyring.json'),
      REDIS_URL: redis.url,
      APP_API_KEY: callerKey,
    });
    const vault = VaultProcess.startBuilt({ mainJs: join(app, 'dist', 'main.js'), remove: () => undefined }, { cwd: app, env });
    try {
      await vault.waitForListening(20_000);
      expect((await http(port, 'GET', '/healthz')).status).toBe(200);
      const ready = await http(port, 'GET', '/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ok' });

      const auth = { authorization: `Bearer ${callerKey}` };
      const put = await http(port, 'PUT', '/tokens/u42/github', {
        headers: auth,
        body: { type: 'oauth2', access_token: 'gho_image_check', refresh_token: 'ghr_image_check', expires_in: 28800 },
      });
      expect(put.status).toBe(201);
      const get = await http(port, 'GET', '/tokens/u42/github', { headers: auth });
      expect(get.status).toBe(200);
      expect(get.body).toMatchObject({ access_token: 'gho_image_check' });

      const metrics = await http(port, 'GET', '/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.text).toContain('token_vault_credentials{state="active"} 1');

      // Production mode, and nothing to warn about: no inline secret, AOF on, noeviction.
      expect(vault.logs().find((line) => line.msg === 'starting token-vault')).toMatchObject({ mode: 'production' });
      expect(vault.warnings().map((line) => line.msg)).toEqual([]);

      vault.signal('SIGTERM');
      expect(await vault.waitForExit(15_000)).toEqual({ code: 0, signal: null });
      expect(vault.stderr).toBe('');
    } finally {
      await vault.kill();
    }
  }, 60_000);

  it('runs the token-vault CLI from the same folder: --version and check-config', async () => {
    const cli = join(app, 'dist', 'cli', 'main.js');
    const version = await execFileAsync(process.execPath, [cli, '--version'], { cwd: app, env: vaultEnv({ HOME: root }) });
    expect(version.stdout.trim()).toBe(packageJson.version);
    const check = await execFileAsync(process.execPath, [cli, 'check-config'], {
      cwd: app,
      env: vaultEnv({
        HOME: root,
        NODE_ENV: 'production',
        TOKEN_VAULT_CONFIG: join(etc, 'token-vault.yaml'),
        TOKEN_VAULT_KEYRING: join(etc, 'keyring', 'keyring.json'),
        REDIS_URL: redis.url,
        APP_API_KEY: callerKey,
      }),
    });
    expect(check.stdout).toMatch(/^ok: .*token-vault\.yaml \(production mode\)/);
  }, 30_000);
});
