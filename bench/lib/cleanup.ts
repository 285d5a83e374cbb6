import { rmSync } from 'node:fs';

/**
 * Everything a bench process starts is registered here, so it is stopped however the process
 * ends: normal completion (the suite awaits `cleanup()`), a thrown error, SIGINT/SIGTERM/SIGHUP
 * (async cleanup, then exit), or a sudden `process.exit` (the synchronous 'exit' hook SIGKILLs
 * every registered pid and removes every registered directory).
 */
type Task = () => Promise<void>;

const tasks: { name: string; run: Task }[] = [];
const pids = new Set<number>();
const dirs = new Set<string>();
let installed = false;
let cleaning: Promise<void> | undefined;
let interrupted: NodeJS.Signals | undefined;

/** The signal that is stopping this process, if any: start nothing new, write nothing more. */
export function interruptedBy(): NodeJS.Signals | undefined {
  return interrupted;
}

/** An async stop step, run in reverse order of registration. Returns an unregister function. */
export function onCleanup(name: string, run: Task): () => void {
  install();
  const task = { name, run };
  tasks.push(task);
  return () => {
    const at = tasks.indexOf(task);
    if (at >= 0) tasks.splice(at, 1);
  };
}

/** A child process to SIGKILL if the process exits before it was stopped. */
export function trackPid(pid: number | undefined): void {
  install();
  if (pid !== undefined) pids.add(pid);
}

export function untrackPid(pid: number | undefined): void {
  if (pid !== undefined) pids.delete(pid);
}

/** A temporary directory to remove when the process exits. */
export function trackDir(dir: string): void {
  install();
  dirs.add(dir);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Runs every registered step (last registered first); errors are reported, not thrown. */
export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    while (tasks.length > 0) {
      const task = tasks.pop() as { name: string; run: Task };
      try {
        await withTimeout(task.run(), 15_000);
      } catch (err) {
        process.stderr.write(`bench: cleanup "${task.name}" failed: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
    killAndRemove();
  })().finally(() => {
    cleaning = undefined;
  });
  return cleaning;
}

function killAndRemove(): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  pids.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAndRemove);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = signal;
      process.stderr.write(`bench: ${signal}, stopping everything this process started\n`);
      void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
  // run.ts went away (its IPC channel closed): do not outlive it.
  if (process.send) process.on('disconnect', () => void cleanup().finally(() => process.exit(1)));
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
