import { join } from 'node:path';
import { cleanup } from './cleanup';
import { renderTable, type SuiteResult } from './figures';
import { suiteOptions, type BenchOptions } from './options';

export type SuiteRun = (options: BenchOptions) => Promise<SuiteResult>;

/** What a suite process sends run.ts over IPC. */
export type SuiteMessage = { kind: 'result'; result: SuiteResult } | { kind: 'error'; message: string };

export const DEFAULT_OUT = join(__dirname, '..', 'results.json');

/**
 * The entry point of a suite file. Started by run.ts (forked, with IPC) it sends its figures
 * back; started on its own (`node --import tsx bench/crypto.ts --quick`) it prints them. Either
 * way everything it started is stopped before it exits.
 */
export function runSuiteMain(run: SuiteRun): void {
  const options = suiteOptions(DEFAULT_OUT);
  void (async () => {
    let message: SuiteMessage;
    try {
      message = { kind: 'result', result: await run(options) };
    } catch (err) {
      message = { kind: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) };
    }
    await cleanup();
    if (process.send) {
      process.send(message, () => process.exit(message.kind === 'result' ? 0 : 1));
      return;
    }
    if (message.kind === 'error') {
      process.stderr.write(`${message.message}\n`);
      process.exit(1);
    }
    console.log(`\n${renderTable([message.result])}`);
    if (message.result.appendix) console.log(`\n${message.result.appendix}`);
    process.exit(0);
  })();
}

/** Progress on stderr (the table goes to stdout). */
export function progress(suite: string, message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${suite}: ${message}\n`);
}
