/**
 * GET latency with 1,000 against 1,000,000 stored credentials (--scale; --quick: 100,000).
 *
 * Two redis-servers (no persistence: the fill would otherwise measure the disk) are filled by
 * bench/fill-worker.ts processes, one per core: each record sealed for its own user with the
 * vault's Envelope and written with pipelined raw commands in the store's layout. A vault
 * process (compiled, production configuration, same keyring) runs against each; autocannon reads
 * random users of each store, alternating small, large, small, large, and the medians are
 * compared. Also: fill rate, Redis memory per credential at that size, start-up time of a vault
 * against the large store.
 */
import { fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { SHARD_COUNT, Keys } from '../src/store/keys';
import { http } from '../test/helpers/vault-process';
import { trackPid, untrackPid } from './lib/cleanup';
import { expectedAccessToken, type FillJob, type FillMessage } from './fill-worker';
import { figure, median, type SuiteResult } from './lib/figures';
import { runLoad, type LoadResult } from './lib/load';
import type { BenchOptions } from './lib/options';
import { startRedis, usedMemory, VOLATILE_REDIS, type BenchRedis } from './lib/redis';
import { progress, runSuiteMain } from './lib/suite';
import { PROVIDER, prepareVault, VaultSetup, type RunningServer } from './lib/vault';

const SUITE = 'scale';
const SMALL = 1000;
const KEY_PREFIX = 'tv:';

export async function run(options: BenchOptions): Promise<SuiteResult> {
  const { build, remove } = await prepareVault(options.vault, options.vaultLabel);
  const setup = new VaultSetup({ keyPrefix: KEY_PREFIX });
  const [small, large] = await Promise.all([startRedis(VOLATILE_REDIS), startRedis(VOLATILE_REDIS)]);
  const label = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);

  progress(SUITE, `filling ${SMALL} credentials`);
  await fillStore(small, setup, SMALL);
  progress(SUITE, `filling ${options.scale.toLocaleString('en-US')} credentials`);
  const emptyBytes = await usedMemory(large.client);
  const fillStarted = performance.now();
  const fillStats = await fillStore(large, setup, options.scale);
  const fillSeconds = (performance.now() - fillStarted) / 1000;
  const bytesPerCredential = ((await usedMemory(large.client)) - emptyBytes) / options.scale;

  const smallVault = await setup.start(build, small.url, { name: 'vault-small' });
  const largeVault = await setup.start(build, large.url, { name: 'vault-large' });
  await checkReads(smallVault, setup, SMALL);
  await checkReads(largeVault, setup, options.scale);

  const rounds: { side: 'small' | 'large'; load: LoadResult }[] = [];
  for (let r = 0; r < options.rounds; r++) {
    for (const [side, vault, users] of [
      ['small', smallVault, SMALL],
      ['large', largeVault, options.scale],
    ] as const) {
      progress(SUITE, `round ${r + 1}/${options.rounds}: ${label(users)} stored, ${options.connections} connections, ${options.warmup} s + ${options.duration} s`);
      const path = () => `/tokens/user-${Math.floor(Math.random() * users)}/${PROVIDER}`;
      rounds.push({ side, load: await runLoad({ port: vault.port, path, headers: setup.auth, connections: options.connections, warmup: options.warmup, duration: options.duration }) });
    }
  }
  await Promise.all([smallVault.stop(), largeVault.stop()]);
  await Promise.all([small.stop(), large.stop()]);
  remove();

  const of = (side: 'small' | 'large', pick: (load: LoadResult) => number) => median(rounds.filter((r) => r.side === side).map((r) => pick(r.load)));
  const ratio = (pick: (load: LoadResult) => number) => {
    const smalls = rounds.filter((r) => r.side === 'small');
    return median(rounds.filter((r) => r.side === 'large').map((r, i) => pick(r.load) / pick((smalls[i] as { load: LoadResult }).load)));
  };
  const big = label(options.scale);
  const warnings = rounds.flatMap((r) => {
    const bad = r.load.non2xx + r.load.errors + r.load.timeouts;
    return bad > 0 ? [`${r.side} round: ${r.load.non2xx} non-2xx, ${r.load.errors} errors, ${r.load.timeouts} timeouts`] : [];
  });
  return {
    suite: SUITE,
    title: `GET over random users, 1k against ${big} stored credentials, ${options.connections} connections, ${options.rounds} rounds × ${options.duration} s per side (median)`,
    figures: [
      figure('scale.fill.rate', `fill ${big} sealed credentials (${fillStats.workers} processes)`, options.scale / fillSeconds, 'records/s'),
      figure('scale.fill.seconds', `fill ${big}: time`, fillSeconds, 's', { digits: 1 }),
      figure('scale.redis_bytes', `Redis used_memory per credential at ${big}`, bytesPerCredential, 'B'),
      figure('scale.small.rps', 'GET req/s, 1k stored', of('small', (l) => l.rps), 'req/s'),
      figure('scale.large.rps', `GET req/s, ${big} stored`, of('large', (l) => l.rps), 'req/s'),
      figure('scale.small.p50', 'GET p50, 1k stored', of('small', (l) => l.p50), 'ms'),
      figure('scale.large.p50', `GET p50, ${big} stored`, of('large', (l) => l.p50), 'ms'),
      figure('scale.small.p99', 'GET p99, 1k stored', of('small', (l) => l.p99), 'ms'),
      figure('scale.large.p99', `GET p99, ${big} stored`, of('large', (l) => l.p99), 'ms'),
      figure('scale.ratio.rps', `req/s ratio ${big} / 1k`, ratio((l) => l.rps), '×'),
      figure('scale.ratio.p50', `p50 ratio ${big} / 1k`, ratio((l) => l.p50), '×'),
      figure('scale.ratio.p99', `p99 ratio ${big} / 1k`, ratio((l) => l.p99), '×', { target: { op: '<=', value: 1.1 } }),
      figure('scale.large.startup_ms', `vault start-up to ready, ${big} stored`, largeVault.startupMs, 'ms', { digits: 0 }),
    ],
    warnings,
    details: { rounds, fill: { ...fillStats, seconds: fillSeconds }, bytesPerCredential },
  };
}

/** Forks fill workers (one per core, at least 50k users each) over user-0 .. user-(n-1), then sets every shard's version counter above the versions written. */
async function fillStore(redis: BenchRedis, setup: VaultSetup, count: number): Promise<{ workers: number; sealMs: number[]; writeMs: number[] }> {
  const workers = Math.max(1, Math.min(availableParallelism(), Math.ceil(count / 50_000)));
  const per = Math.ceil(count / workers);
  const now = Date.now();
  const results = await Promise.all(
    Array.from({ length: workers }, (_, w) =>
      runFillWorker({
        redisUrl: redis.url,
        keyPrefix: KEY_PREFIX,
        keyringJson: setup.keyringJson,
        provider: PROVIDER,
        from: w * per,
        to: Math.min(count, (w + 1) * per),
        now,
      }),
    ),
  );
  const keys = new Keys(KEY_PREFIX);
  const pipeline = redis.client.pipeline();
  for (let shard = 0; shard < SHARD_COUNT; shard++) pipeline.set(keys.shardKey(shard, 'seq'), count);
  await pipeline.exec();
  return { workers, sealMs: results.map((r) => Math.round(r.sealMs)), writeMs: results.map((r) => Math.round(r.writeMs)) };
}

function runFillWorker(job: FillJob): Promise<{ sealMs: number; writeMs: number }> {
  return new Promise((resolveFill, reject) => {
    const child = fork(join(__dirname, 'fill-worker.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    trackPid(child.pid);
    let result: { sealMs: number; writeMs: number } | undefined;
    child.on('message', (message: FillMessage) => {
      if (message.kind === 'done') result = message;
    });
    child.once('exit', (code) => {
      untrackPid(child.pid);
      if (result) resolveFill(result);
      else reject(new Error(`fill worker for users ${job.from}..${job.to} exited with code ${code}`));
    });
    child.send(job);
  });
}

/** A few random users read through the vault: 200 and the access token written for that user. */
async function checkReads(vault: RunningServer, setup: VaultSetup, users: number): Promise<void> {
  for (let k = 0; k < 5; k++) {
    const i = Math.floor(Math.random() * users);
    const got = await http(vault.port, 'GET', `/tokens/user-${i}/${PROVIDER}`, { headers: setup.auth });
    const token = (got.body as { access_token?: string } | undefined)?.access_token;
    if (got.status !== 200 || token !== expectedAccessToken(i)) throw new Error(`GET user-${i} from ${vault.name}: ${got.status} ${got.text}`);
  }
}

if (require.main === module) runSuiteMain(run);
