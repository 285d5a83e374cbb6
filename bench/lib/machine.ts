import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { REPO_ROOT } from '../../test/helpers/vault-process';

export interface Machine {
  cpu: string;
  /** Logical CPUs the OS reports, and those this process may use. */
  cores: number;
  availableParallelism: number;
  ramBytes: number;
  os: string;
  node: string;
  redisServer: string;
  /** One-minute load average when the bench started (how busy the machine was). */
  loadAverageAtStart: number;
  gitCommit: string | null;
  /** Uncommitted changes in the checkout (the figures are of the working tree, not the commit). */
  gitDirty: boolean | null;
}

export function describeMachine(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    availableParallelism: availableParallelism(),
    ramBytes: totalmem(),
    os: `${process.platform} ${release()}`,
    node: process.version,
    redisServer: run('redis-server', ['--version'])?.match(/v=(\S+)/)?.[1] ?? 'unknown',
    loadAverageAtStart: loadavg()[0] ?? 0,
    gitCommit: run('git', ['rev-parse', 'HEAD'])?.trim() ?? null,
    gitDirty: ((status) => (status === null ? null : status.trim().length > 0))(run('git', ['status', '--porcelain', '--untracked-files=no'])),
  };
}

function run(command: string, args: string[]): string | null {
  try {
    return execFileSync(command, args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return null;
  }
}
