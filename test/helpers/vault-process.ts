import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

/**
 * The vault as a separate OS process: built once with tsc into a temp dir (never the repo's
 * dist/), or run from the TypeScript source as `npm run dev` does. Output is captured whole, so a
 * test can wait for log lines and grep everything the process ever wrote.
 */
export const REPO_ROOT = resolve(__dirname, '..', '..');

/** One pino log line (JSON on stdout). */
export type LogLine = { level: number; msg: string } & Record<string, unknown>;

export interface BuiltVault {
  /** The compiled dist/main.js. */
  mainJs: string;
  remove(): void;
}

/**
 * `tsc -p tsconfig.build.json --outDir <tmp>` and the Lua scripts copied beside the compiled
 * store, as `npm run build` does. node_modules is linked next to the output so the compiled
 * CommonJS resolves its dependencies.
 */
export async function buildVault(): Promise<BuiltVault> {
  const root = mkdtempSync(join(tmpdir(), 'tv-build-'));
  const outDir = join(root, 'dist');
  try {
    await promisify(execFile)(join(REPO_ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json', '--outDir', outDir], {
      cwd: REPO_ROOT,
    });
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    throw new Error(`tsc failed:\n${stdout ?? ''}${stderr ?? ''}`);
  }
  cpSync(join(REPO_ROOT, 'src', 'store', 'lua'), join(outDir, 'store', 'lua'), { recursive: true });
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
  return { mainJs: join(outDir, 'main.js'), remove: () => rmSync(root, { recursive: true, force: true }) };
}

/**
 * A controlled environment: PATH (node, redis-server) and HOME only, then `extra`. REDIS_URL,
 * PORT, NODE_ENV and TOKEN_VAULT_* of the outer environment never leak in.
 */
export function vaultEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ['PATH', 'HOME', 'TMPDIR']) if (process.env[name] !== undefined) env[name] = process.env[name];
  for (const [name, value] of Object.entries(extra)) if (value !== undefined) env[name] = value;
  return env;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class VaultProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private exit: Exit | undefined;
  private readonly listeners = new Set<() => void>();

  private constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => {
      this.stdout += chunk.toString('utf8');
      this.notify();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
      this.notify();
    });
    // 'close' (not 'exit'): all output has been read by then.
    this.exited = new Promise((resolveExit) =>
      child.once('close', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolveExit(this.exit);
      }),
    );
  }

  /** `node <built>/main.js` with the given environment and working directory. */
  static startBuilt(built: BuiltVault, options: { cwd: string; env: NodeJS.ProcessEnv }): VaultProcess {
    return new VaultProcess(spawn(process.execPath, [built.mainJs], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** `node --import tsx <repo>/src/main.ts`, as `npm run dev` runs it. */
  static startDev(options: { cwd: string; env: NodeJS.ProcessEnv }): VaultProcess {
    const tsx = pathToFileURL(require.resolve('tsx', { paths: [REPO_ROOT] })).href;
    const args = ['--import', tsx, join(REPO_ROOT, 'src', 'main.ts')];
    return new VaultProcess(spawn(process.execPath, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Everything the process wrote, both streams. */
  output(): string {
    return this.stdout + this.stderr;
  }

  /** The JSON log lines on stdout (anything else is skipped). */
  logs(): LogLine[] {
    const lines: LogLine[] = [];
    for (const line of this.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // a line still being written
      }
    }
    return lines;
  }

  warnings(): LogLine[] {
    return this.logs().filter((line) => line.level === 40);
  }

  /** Resolves with the first log line that matches; rejects when the process exits first or on timeout. */
  waitForLog(match: string | ((line: LogLine) => boolean), timeoutMs = 10_000): Promise<LogLine> {
    const test = typeof match === 'string' ? (line: LogLine) => line.msg.includes(match) : match;
    const what = typeof match === 'string' ? `a log line with "${match}"` : 'a matching log line';
    return this.waitFor(() => this.logs().find(test), what, timeoutMs);
  }

  /** Waits for "token-vault listening" and returns that line. */
  waitForListening(timeoutMs = 15_000): Promise<LogLine> {
    return this.waitForLog('token-vault listening', timeoutMs);
  }

  waitForExit(timeoutMs = 10_000): Promise<Exit> {
    return this.waitFor(() => this.exit, 'the process to exit', timeoutMs, true);
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGKILL if still running; for afterAll/afterEach. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  private waitFor<T>(probe: () => T | undefined, what: string, timeoutMs: number, exitOk = false): Promise<T> {
    return new Promise((resolveWait, reject) => {
      const check = () => {
        const found = probe();
        if (found !== undefined) return finish(() => resolveWait(found));
        if (!exitOk && this.exit) {
          return finish(() => reject(new Error(`process exited (code ${this.exit?.code}, signal ${this.exit?.signal}) before ${what}\n${this.tail()}`)));
        }
      };
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.tail()}`))), timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private tail(): string {
    return `--- stdout ---\n${this.stdout.slice(-3000)}\n--- stderr ---\n${this.stderr.slice(-3000)}`;
  }
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON, or undefined. */
  body: unknown;
}

/** One HTTP request on its own connection (no agent, no keep-alive pool left behind). */
export function http(
  port: number,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<HttpResult> {
  const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  const headers: Record<string, string> = { ...options.headers };
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolveRequest, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('error', reject);
      res.on('end', () => resolveRequest({ status: res.statusCode ?? 0, headers: res.headers, text, body: parseJson(text) }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Resolves 'open' if a TCP connection to 127.0.0.1:port succeeds, else the error code (ECONNREFUSED, ...). */
export function tryConnect(port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolveConnect) => {
    const socket = connect(port, '127.0.0.1');
    const done = (outcome: string) => {
      socket.destroy();
      resolveConnect(outcome);
    };
    socket.setTimeout(timeoutMs, () => done('timeout'));
    socket.once('connect', () => done('open'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}
