import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ROOT = join(__dirname, '..', '..', '..');

/**
 * `redocly lint` with the repository's redocly.yaml (the recommended rules): no error and no
 * warning, so a new warning is noticed instead of scrolling by.
 */
test('openapi.yaml passes redocly lint without errors or warnings', async () => {
  const run = promisify(execFile)(join(ROOT, 'node_modules', '.bin', 'redocly'), ['lint', 'openapi.yaml', '--format=json'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  });
  const { stdout } = await run.catch((err: { code?: number; stdout?: string; stderr?: string }) => {
    throw new Error(`redocly lint exited with ${err.code}:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  });
  const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; message: string }[] };
  expect({ totals: report.totals, problems: report.problems.map((p) => `${p.ruleId}: ${p.message}`) }).toEqual({
    totals: { errors: 0, warnings: 0, ignored: 0 },
    problems: [],
  });
});
