/**
 * Start-up time and idle memory of the vault process: `node main.js` with a production
 * configuration is spawned `starts` times against a redis-server on loopback; start-up is the
 * time from spawn to the first 200 from /readyz (polled every 5 ms); then, with no requests,
 * CPU use over 3 s (the scheduler, heartbeat and outbox sweep keep running) and RSS from
 * /proc/<pid>/status; stop is SIGTERM to exit.
 */
import { figure, median, type SuiteResult } from './lib/figures';
import type { BenchOptions } from './lib/options';
import { PRODUCTION_REDIS, startRedis } from './lib/redis';
import { progress, runSuiteMain } from './lib/suite';
import { describeBuild, prepareVault, sleep, VaultSetup } from './lib/vault';

const SUITE = 'startup';
const MB = 1024 * 1024;
const IDLE_MS = 3000;

export async function run(options: BenchOptions): Promise<SuiteResult> {
  const { build, remove } = await prepareVault(options.vault, options.vaultLabel);
  const redis = await startRedis(PRODUCTION_REDIS);
  const setup = new VaultSetup();
  const starts: { startupMs: number; rssIdleBytes: number; idleCpuPercent: number; stopMs: number }[] = [];
  try {
    // One start thrown away: the first reads every file from disk.
    await (await setup.start(build, redis.url, { name: 'vault-cold' })).stop();
    for (let i = 0; i < options.starts; i++) {
      progress(SUITE, `start ${i + 1}/${options.starts}`);
      const vault = await setup.start(build, redis.url, { name: `vault-${i}` });
      await sleep(1000);
      const cpuBefore = vault.cpuSeconds();
      await sleep(IDLE_MS);
      const idleCpuPercent = ((vault.cpuSeconds() - cpuBefore) / (IDLE_MS / 1000)) * 100;
      const rssIdleBytes = await vault.rssBytes();
      const stopping = performance.now();
      await vault.stop();
      starts.push({ startupMs: vault.startupMs, rssIdleBytes, idleCpuPercent, stopMs: performance.now() - stopping });
    }
  } finally {
    await redis.stop();
    remove();
  }
  return {
    suite: SUITE,
    title: `${describeBuild(build)} with NODE_ENV=production, ${options.starts} starts (median)`,
    figures: [
      figure('startup.ready_ms', 'spawn to first 200 from /readyz', median(starts.map((s) => s.startupMs)), 'ms', { digits: 0 }),
      figure('startup.rss_idle', 'RSS idle, 4 s after ready', median(starts.map((s) => s.rssIdleBytes)) / MB, 'MB', { digits: 1 }),
      figure('startup.idle_cpu', 'CPU idle (scheduler polls 1,024 shards a second)', median(starts.map((s) => s.idleCpuPercent)), '% of a core', { digits: 1 }),
      figure('startup.stop_ms', 'SIGTERM to exit, idle', median(starts.map((s) => s.stopMs)), 'ms', { digits: 0 }),
    ],
    details: { starts },
  };
}

if (require.main === module) runSuiteMain(run);
