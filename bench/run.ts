/**
 * npm run bench: every suite, one after the other (they share the machine, so never in
 * parallel), each in its own process; one table at the end, and bench/results.json with the
 * machine, the options and every figure (unit, target, pass/fail where a target exists).
 *
 *   npm run bench                      full run (~6-8 minutes on 2 cores)
 *   npm run bench -- --quick           shorter rounds, 100k instead of 1M stored (~2-3 minutes)
 *   npm run bench -- --only get,crypto --profile
 *
 * Options: bench/lib/options.ts. Each suite also runs on its own:
 * `node --import tsx bench/get.ts --quick`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { cleanup, interruptedBy, onCleanup, trackPid, untrackPid } from './lib/cleanup';
import { renderTable, type SuiteResult } from './lib/figures';
import { describeMachine } from './lib/machine';
import { parseOptions, SUITES, type BenchOptions, type SuiteName } from './lib/options';
import { DEFAULT_OUT, progress, type SuiteMessage } from './lib/suite';
import { describeBuild, prepareVault, type VaultBuild } from './lib/vault';

const FILES: Record<SuiteName, string> = {
  get: 'get.ts',
  crypto: 'crypto.ts',
  startup: 'startup.ts',
  scale: 'scale.ts',
  refresh: 'refresh.ts',
  rewrap: 'rewrap.ts',
  'redis-bytes': 'redis-bytes.ts',
};
const NEEDS_VAULT: SuiteName[] = ['get', 'startup', 'scale'];

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2), process.env, DEFAULT_OUT);
  const machine = describeMachine();
  const startedAt = new Date();
  const suites = SUITES.filter((name) => options.only.includes(name));
  const warnings: string[] = [];
  if (machine.loadAverageAtStart > machine.cores * 0.5) {
    warnings.push(`the machine was busy when the bench started (load average ${machine.loadAverageAtStart.toFixed(1)} on ${machine.cores} cores): absolute figures are low; ratios against the same-run baselines hold better`);
  }

  let build: VaultBuild | null = null;
  let removeBuild = () => undefined as void;
  if (suites.some((name) => NEEDS_VAULT.includes(name))) {
    progress('bench', options.vault ? `vault: ${options.vault}` : 'building the vault (tsc -p tsconfig.build.json into a temp dir)');
    try {
      ({ build, remove: removeBuild } = await prepareVault(options.vault));
    } catch (err) {
      const reason = err instanceof Error ? err.message.split('\n').slice(0, 6).join(' | ') : String(err);
      warnings.push(`the vault did not build (${reason}); it ran from source with tsx instead: start-up time includes tsx`);
      build = { kind: 'source' };
    }
  }
  const vaultChoice = build === null ? null : build.kind === 'source' ? 'source' : build.mainJs;

  const results: SuiteResult[] = [];
  const failed: { suite: SuiteName; error: string }[] = [];
  for (const name of suites) {
    if (interruptedBy()) break;
    progress('bench', `suite ${name}`);
    const message = await runSuite(name, { ...options, vault: vaultChoice, ...(build ? { vaultLabel: describeBuild(build) } : {}) });
    if (message.kind === 'result') results.push(message.result);
    else {
      failed.push({ suite: name, error: message.message });
      process.stderr.write(`bench: suite ${name} failed:\n${message.message}\n`);
      results.push({ suite: name, title: 'FAILED (see the error above and in results.json)', figures: [] });
    }
  }
  removeBuild();
  // Interrupted: the signal handler stops everything and exits; no table, no results.json.
  if (interruptedBy()) return new Promise<number>(() => undefined);

  const finishedAt = new Date();
  const header = [
    `token-vault bench, ${options.quick ? 'quick' : 'full'} run, ${startedAt.toISOString()}`,
    `${machine.cpu}, ${machine.cores} cores, ${(machine.ramBytes / 2 ** 30).toFixed(1)} GiB RAM, ${machine.os}, node ${machine.node}, redis-server ${machine.redisServer}`,
    `load average ${machine.loadAverageAtStart.toFixed(2)} at start, ${(loadavg()[0] ?? 0).toFixed(2)} at end; vault: ${build ? describeBuild(build) : '(not run)'}; commit ${machine.gitCommit?.slice(0, 12) ?? '?'}${machine.gitDirty ? ' + uncommitted changes' : ''}`,
  ];
  console.log(`\n${header.join('\n')}\n\n${renderTable(results)}`);
  for (const warning of warnings) console.log(`! ${warning}`);
  for (const result of results) if (result.appendix) console.log(`\n${result.appendix}`);

  const report = {
    schema: 1,
    mode: options.quick ? 'quick' : 'full',
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationSeconds: Math.round((finishedAt.getTime() - startedAt.getTime()) / 1000),
    machine: { ...machine, loadAverageAtEnd: loadavg()[0] ?? 0 },
    vault: build ? describeBuild(build) : null,
    options,
    warnings: [...warnings, ...results.flatMap((r) => (r.warnings ?? []).map((w) => `${r.suite}: ${w}`))],
    figures: results.flatMap((r) =>
      r.figures.map((f) => ({
        suite: r.suite,
        id: f.id,
        name: f.name,
        value: round(f.value),
        unit: f.unit,
        ...(f.target ? { target: f.target, pass: f.pass } : {}),
        ...(f.note ? { note: f.note } : {}),
      })),
    ),
    suites: results.map((r) => ({ suite: r.suite, title: r.title, details: r.details ?? {} })),
    failed,
  };
  writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwritten: ${relative(process.cwd(), options.out) || options.out} (${Math.round(report.durationSeconds / 6) / 10} min)`);
  return failed.length > 0 ? 1 : 0;
}

/** The suite in its own process (node --import tsx bench/<suite>.ts), its result over IPC. */
function runSuite(name: SuiteName, options: BenchOptions): Promise<SuiteMessage> {
  return new Promise((resolveSuite) => {
    const child: ChildProcess = fork(join(__dirname, FILES[name]), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_OPTIONS: JSON.stringify(options) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    trackPid(child.pid);
    // On SIGINT/SIGTERM: let the suite stop what it started, then make sure it is gone.
    const unregister = onCleanup(`suite ${name}`, async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    });
    let message: SuiteMessage | undefined;
    child.on('message', (received: SuiteMessage) => (message = received));
    child.once('exit', (code, signal) => {
      unregister();
      untrackPid(child.pid);
      resolveSuite(message ?? { kind: 'error', message: `the suite process exited (code ${code}, signal ${signal}) without a result` });
    });
  });
}

function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  return Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 1000) / 1000;
}

main().then(
  async (code) => {
    await cleanup();
    process.exit(code);
  },
  async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanup();
    process.exit(1);
  },
);
