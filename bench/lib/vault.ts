import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { stringify } from 'yaml';
import { freePort } from '../../test/helpers/redis-server';
import { buildVault, http, REPO_ROOT, vaultEnv } from '../../test/helpers/vault-process';
import { onCleanup, removeDir, trackDir, trackPid, untrackPid } from './cleanup';

/** How the vault is run: a compiled main.js (as `npm start` runs dist/main.js) or the TypeScript source with tsx. */
export type VaultBuild = { kind: 'built'; mainJs: string; label?: string } | { kind: 'source' };

export const PROVIDER = 'bench';

/**
 * `tsc -p tsconfig.build.json` into a temp dir (test/helpers buildVault), removed at cleanup;
 * or the main.js / "source" the options name.
 */
export async function prepareVault(choice: string | null, label?: string): Promise<{ build: VaultBuild; remove: () => void }> {
  if (choice === 'source') return { build: { kind: 'source' }, remove: () => undefined };
  if (choice) {
    const mainJs = resolve(choice);
    if (!existsSync(mainJs)) throw new Error(`--vault ${choice}: no such file`);
    return { build: { kind: 'built', mainJs, ...(label ? { label } : {}) }, remove: () => undefined };
  }
  const built = await buildVault();
  const root = resolve(built.mainJs, '..', '..');
  trackDir(root);
  return { build: { kind: 'built', mainJs: built.mainJs, label: 'node dist/main.js (the working tree, compiled by tsc -p tsconfig.build.json)' }, remove: () => removeDir(root) };
}

export function describeBuild(build: VaultBuild): string {
  if (build.kind === 'source') return 'node --import tsx src/main.ts';
  return build.label ?? `node ${build.mainJs.startsWith(REPO_ROOT) ? build.mainJs.slice(REPO_ROOT.length + 1) : build.mainJs}`;
}

/**
 * A production configuration in its own temp dir: NODE_ENV=production, keyring from a file,
 * caller key and client secret from the environment, one caller, one provider whose token
 * endpoint is on loopback (never called: the stored tokens are valid for a day).
 */
export class VaultSetup {
  readonly dir: string;
  readonly apiKey = `tv_bench_${randomBytes(16).toString('hex')}`;
  readonly keyringJson: string;
  readonly configPath: string;
  private readonly logLevel: string;

  constructor(options: { keyPrefix?: string; logLevel?: string } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'tv-bench-vault-'));
    trackDir(this.dir);
    this.keyringJson = JSON.stringify({ active: 'bench-1', keys: { 'bench-1': randomBytes(32).toString('base64') } });
    writeFileSync(join(this.dir, 'keyring.json'), this.keyringJson, { mode: 0o600 });
    this.configPath = join(this.dir, 'token-vault.yaml');
    this.logLevel = options.logLevel ?? 'info';
    writeFileSync(
      this.configPath,
      stringify({
        server: { host: '127.0.0.1' },
        redis: { url: { env: 'REDIS_URL' }, keyPrefix: options.keyPrefix ?? 'tv:' },
        keyring: { file: join(this.dir, 'keyring.json') },
        callers: [{ name: 'bench', keys: [{ env: 'BENCH_API_KEY' }], scopes: ['tokens:read', 'tokens:write'], providers: [PROVIDER] }],
        providers: {
          [PROVIDER]: {
            type: 'oauth2',
            clientId: 'bench-client',
            clientSecret: { env: 'BENCH_CLIENT_SECRET' },
            tokenUrl: 'http://127.0.0.1:9/token',
          },
        },
      }),
    );
  }

  get auth(): Record<string, string> {
    return { authorization: `Bearer ${this.apiKey}` };
  }

  /** Spawns the vault on a free loopback port against `redisUrl`; resolves once /readyz answers 200. */
  async start(build: VaultBuild, redisUrl: string, options: { nodeArgs?: string[]; name?: string; env?: Record<string, string> } = {}): Promise<RunningServer> {
    const port = await freePort();
    const name = options.name ?? `vault-${port}`;
    const logPath = join(this.dir, `${name}.log`);
    const log = openSync(logPath, 'a');
    const nodeArgs = options.nodeArgs ?? [];
    const args =
      build.kind === 'built'
        ? [...nodeArgs, build.mainJs]
        : [...nodeArgs, '--import', pathToFileURL(require.resolve('tsx', { paths: [REPO_ROOT] })).href, join(REPO_ROOT, 'src', 'main.ts')];
    const started = performance.now();
    const child = spawn(process.execPath, args, {
      cwd: this.dir,
      env: vaultEnv({
        NODE_ENV: 'production',
        TOKEN_VAULT_CONFIG: this.configPath,
        PORT: String(port),
        REDIS_URL: redisUrl,
        BENCH_API_KEY: this.apiKey,
        BENCH_CLIENT_SECRET: 'bench-client-secret',
        LOG_LEVEL: this.logLevel,
        ...options.env,
      }),
      // Logs go to a file, as a container runtime would take them: the bench never reads them
      // on the hot path.
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const vault = new RunningServer(child, port, logPath, name);
    await vault.waitReady(30_000);
    vault.startupMs = performance.now() - started;
    return vault;
  }
}

export class RunningServer {
  startupMs = Number.NaN;
  readonly exited: Promise<void>;
  private exitCode: number | null | undefined;
  private readonly unregister: () => void;

  constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly logPath: string,
    readonly name: string,
  ) {
    trackPid(child.pid);
    this.exited = new Promise((resolveExit) =>
      child.once('exit', (code) => {
        this.exitCode = code;
        untrackPid(child.pid);
        resolveExit();
      }),
    );
    this.unregister = onCleanup(name, () => this.stop());
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited (code ${this.exitCode}) before it was ready:\n${this.logTail()}`);
      const ready = await http(this.port, 'GET', '/readyz').catch(() => null);
      if (ready?.status === 200) return;
      await sleep(5);
    }
    throw new Error(`${this.name} was not ready after ${timeoutMs} ms:\n${this.logTail()}`);
  }

  /** Resident set size in bytes: /proc/<pid>/status on Linux, else the vault's own metric. */
  async rssBytes(): Promise<number> {
    const status = `/proc/${this.pid}/status`;
    if (existsSync(status)) {
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(status, 'utf8'))?.[1];
      if (kb) return Number(kb) * 1024;
    }
    const metrics = await http(this.port, 'GET', '/metrics');
    return Number(/^token_vault_process_resident_memory_bytes (\d+)/m.exec(metrics.text)?.[1] ?? Number.NaN);
  }

  /** CPU time (user + system) the process has used, in seconds; NaN where /proc is missing. */
  cpuSeconds(): number {
    return processCpuSeconds(this.pid);
  }

  logBytes(): number {
    return existsSync(this.logPath) ? statSync(this.logPath).size : 0;
  }

  logTail(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8').slice(-3000) : '(no log)';
  }

  /** SIGTERM (graceful: a --cpu-prof profile is written on exit), SIGKILL after 15 s. */
  async stop(): Promise<void> {
    this.unregister();
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** utime + stime of a process from /proc/<pid>/stat (clock ticks of 1/100 s, the Linux default). */
export function processCpuSeconds(pid: number): number {
  const path = `/proc/${pid}/stat`;
  if (!existsSync(path)) return Number.NaN;
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

const CLOCK_TICKS = 100;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}

/**
 * bench/baseline-server.ts as its own process, compiled to plain JavaScript first (as the vault
 * is), so neither side carries tsx's loader. Logs to a file in `dir`.
 */
export async function startBaseline(redisUrl: string, dir: string): Promise<RunningServer> {
  const outDir = join(dir, 'baseline');
  if (!existsSync(outDir)) {
    mkdirSync(outDir);
    const source = readFileSync(join(REPO_ROOT, 'bench', 'baseline-server.ts'), 'utf8');
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
    writeFileSync(join(outDir, 'baseline-server.js'), outputText);
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(outDir, 'node_modules'), 'dir');
  }
  const port = await freePort();
  const name = `baseline-${port}`;
  const logPath = join(dir, `${name}.log`);
  const log = openSync(logPath, 'a');
  const started = performance.now();
  const child = spawn(process.execPath, [join(outDir, 'baseline-server.js')], {
    cwd: outDir,
    env: vaultEnv({ NODE_ENV: 'production', BASELINE_PORT: String(port), BASELINE_REDIS_URL: redisUrl }),
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const server = new RunningServer(child, port, logPath, name);
  await server.waitReady(30_000);
  server.startupMs = performance.now() - started;
  return server;
}
