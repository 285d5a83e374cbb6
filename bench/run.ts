/**
 * npm run bench: every benchmark, one after the other (they share the machine, so never in
 * parallel). Each prints its own figures. Set BENCH_CREDENTIALS to change the refresh bench size.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const suites = ['redis-bytes.ts', 'refresh.ts', 'rewrap.ts'];
let failed = false;
for (const suite of suites) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(__dirname, suite)], { stdio: 'inherit' });
  if (run.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
