/**
 * GET /tokens/:user/:provider, the hot path, against a baseline measured in the same run.
 *
 * The real vault runs as its own process (the compiled main.js, NODE_ENV=production, keyring
 * from a file, one caller, one provider, LOG_LEVEL=info to a file) on loopback, with its own
 * redis-server (AOF, fsync every second). 1,000 users are stored through PUT. The baseline
 * (bench/baseline-server.ts, express 5 + ioredis, no crypto, no auth, no logs, no metrics)
 * reads a copy of each record from the same Redis and answers the same JSON. autocannon, in
 * this process, runs `connections` keep-alive connections against one, then the other:
 * baseline, vault, baseline, vault, ... and the median of each side (and of the per-round
 * ratios) is reported, so drift on a shared machine hits both sides alike.
 *
 * Also: CPU per GET of each server process (/proc/<pid>/stat over the measured run: less noisy
 * than req/s on a shared machine, and what sizing needs), Redis commands per GET (INFO
 * commandstats, commands the idle servers never issue), log bytes per GET, RSS of both. With
 * --profile, one more vault round runs under --cpu-prof and its time is summarised by
 * component, function and package (lib/cpu-profile.ts).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Keys } from '../src/store/keys';
import { http } from '../test/helpers/vault-process';
import { baselineKey } from './baseline-server';
import { renderProfile, summariseProfile, type ProfileSummary } from './lib/cpu-profile';
import { figure, median, type Figure, type SuiteResult } from './lib/figures';
import { runLoad, type LoadResult } from './lib/load';
import type { BenchOptions } from './lib/options';
import { callsBetween, commandCalls, infoField, PRODUCTION_REDIS, startRedis, type BenchRedis } from './lib/redis';
import { progress, runSuiteMain } from './lib/suite';
import { PROVIDER, prepareVault, sleep, startBaseline, VaultSetup, type RunningServer } from './lib/vault';

const SUITE = 'get';
const MB = 1024 * 1024;

export interface Round {
  side: 'baseline' | 'vault';
  load: LoadResult;
  /** CPU time of the server process per 2xx response (/proc/<pid>/stat), in µs. */
  cpuMicrosPerGet: number;
  /** redis-server CPU per 2xx response, background work included, in µs. */
  redisCpuMicrosPerGet: number;
  /** Redis commands per 2xx response, of those the idle servers never issue. */
  redisCommandsPerGet: number;
  commands: Record<string, number>;
  logBytesPerGet: number;
}

export async function run(options: BenchOptions): Promise<SuiteResult> {
  const warnings: string[] = [];
  const { build, remove } = await prepareVault(options.vault, options.vaultLabel);
  const redis = await startRedis(PRODUCTION_REDIS);
  const setup = new VaultSetup();
  progress(SUITE, 'starting the vault');
  const vault = await setup.start(build, redis.url, { name: 'vault' });
  const users = options.users;
  progress(SUITE, `storing ${users} credentials through PUT`);
  const bodyBytes = await populate(vault, setup, users);
  await copyForBaseline(redis, vault, setup, users);
  const baseline = await startBaseline(redis.url, setup.dir);
  await checkSameAnswer(vault, baseline, setup);

  const idle = await idleCommands(redis, 3000);
  const rssIdle = await vault.rssBytes();
  const path = () => `/tokens/user-${Math.floor(Math.random() * users)}/${PROVIDER}`;
  const rounds: Round[] = [];
  for (let r = 0; r < options.rounds; r++) {
    for (const [side, server] of [
      ['baseline', baseline],
      ['vault', vault],
    ] as const) {
      progress(SUITE, `round ${r + 1}/${options.rounds}: ${side}, ${options.connections} connections, ${options.warmup} s + ${options.duration} s`);
      rounds.push(await measure(side, server, redis, idle, { ...options, path, headers: setup.auth }));
    }
  }
  const rssAfter = await vault.rssBytes();
  const baselineRss = await baseline.rssBytes();

  let profile: ProfileSummary | undefined;
  if (options.profile) {
    progress(SUITE, 'one more vault round under --cpu-prof');
    await vault.stop();
    const dir = join(setup.dir, 'cpu-prof');
    const profiled = await setup.start(build, redis.url, { name: 'vault-profiled', nodeArgs: ['--cpu-prof', '--cpu-prof-interval=250', `--cpu-prof-dir=${dir}`] });
    await runLoad({ port: profiled.port, path, headers: setup.auth, connections: options.connections, warmup: options.warmup, duration: options.duration });
    await profiled.stop();
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
    if (file) profile = summariseProfile(JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown, 25, profiled.startupMs + options.warmup * 1000);
    else warnings.push('--profile: the vault wrote no .cpuprofile');
  }

  await Promise.all([vault.stop(), baseline.stop()]);
  await redis.stop();
  remove();

  const side = (name: Round['side']) => rounds.filter((round) => round.side === name);
  const med = (name: Round['side'], pick: (round: Round) => number) => median(side(name).map(pick));
  const ratio = (pick: (round: Round) => number) => median(side('vault').map((round, i) => pick(round) / pick(side('baseline')[i] as Round)));
  for (const round of rounds) {
    const { non2xx, errors, timeouts } = round.load;
    if (non2xx + errors + timeouts > 0) warnings.push(`${round.side} round: ${non2xx} non-2xx, ${errors} errors, ${timeouts} timeouts`);
  }
  const figures: Figure[] = [
    figure('get.baseline.rps', 'baseline req/s', med('baseline', (r) => r.load.rps), 'req/s'),
    figure('get.vault.rps', 'vault req/s', med('vault', (r) => r.load.rps), 'req/s'),
    figure('get.ratio.rps', 'vault / baseline req/s', ratio((r) => r.load.rps), '×', { target: { op: '>=', value: 0.85 } }),
    figure('get.baseline.p50', 'baseline p50', med('baseline', (r) => r.load.p50), 'ms'),
    figure('get.vault.p50', 'vault p50', med('vault', (r) => r.load.p50), 'ms'),
    figure('get.ratio.p50', 'vault / baseline p50', ratio((r) => r.load.p50), '×'),
    figure('get.baseline.p99', 'baseline p99', med('baseline', (r) => r.load.p99), 'ms'),
    figure('get.vault.p99', 'vault p99', med('vault', (r) => r.load.p99), 'ms'),
    figure('get.ratio.p99', 'vault / baseline p99', ratio((r) => r.load.p99), '×', { target: { op: '<=', value: 1.25 } }),
    figure('get.baseline.cpu', 'baseline CPU per GET', med('baseline', (r) => r.cpuMicrosPerGet), 'µs'),
    figure('get.vault.cpu', 'vault CPU per GET', med('vault', (r) => r.cpuMicrosPerGet), 'µs'),
    figure('get.ratio.cpu', 'vault / baseline CPU per GET', ratio((r) => r.cpuMicrosPerGet), '×'),
    figure('get.vault.redis_commands', 'vault Redis commands per GET', med('vault', (r) => r.redisCommandsPerGet), 'cmd'),
    figure('get.vault.idle_redis_scripts', 'Redis scripts/s from the idle vault (scheduler claims)', (idle.commands.evalsha ?? 0) / idle.seconds, 'calls/s'),
    figure('get.vault.log_bytes', 'vault log bytes per GET (LOG_LEVEL=info)', med('vault', (r) => r.logBytesPerGet), 'B'),
    figure('get.vault.body_bytes', 'response body', bodyBytes, 'B'),
    figure('get.vault.rss_after_load', 'vault RSS after the GET load', rssAfter / MB, 'MB', { digits: 1 }),
    figure('get.baseline.rss_after_load', 'baseline RSS after the GET load', baselineRss / MB, 'MB', { digits: 1 }),
  ];
  return {
    suite: SUITE,
    title: `GET /tokens/:user/:provider, ${options.connections} connections over ${users} users, ${options.rounds} rounds × ${options.duration} s per side (median)`,
    figures,
    warnings,
    ...(profile ? { appendix: renderProfile(profile) } : {}),
    details: {
      rounds,
      idleRedisCommands: idle,
      vaultRssIdleBytes: rssIdle,
      vaultRssAfterLoadBytes: rssAfter,
      baselineRssAfterLoadBytes: baselineRss,
      vaultStartupMs: vault.startupMs,
      ...(profile ? { profile } : {}),
    },
  };
}

export async function measure(
  side: Round['side'],
  server: RunningServer,
  redis: BenchRedis,
  idle: IdleCommands,
  spec: BenchOptions & { path: () => string; headers: Record<string, string> },
): Promise<Round> {
  let before = new Map<string, number>();
  let logBefore = 0;
  let cpuBefore = 0;
  let redisCpuBefore = 0;
  const load = await runLoad({ port: server.port, path: spec.path, headers: spec.headers, connections: spec.connections, warmup: spec.warmup, duration: spec.duration }, async () => {
    before = await commandCalls(redis.client);
    logBefore = server.logBytes();
    cpuBefore = server.cpuSeconds();
    redisCpuBefore = await redisCpuSeconds(redis);
  });
  const cpu = server.cpuSeconds() - cpuBefore;
  const redisCpu = (await redisCpuSeconds(redis)) - redisCpuBefore;
  const commands = callsBetween(before, await commandCalls(redis.client));
  delete commands.info;
  // Only commands the idle servers never issue: the vault's scheduler claims, heartbeats and
  // outbox sweeps (and the commands their scripts call) run whatever the load.
  const perGet = Object.entries(commands).reduce((sum, [command, calls]) => sum + (command in idle.commands ? 0 : calls), 0) / load.requests;
  // The vault's log is written asynchronously: let it drain before measuring it.
  await sleep(200);
  return {
    side,
    load,
    cpuMicrosPerGet: (cpu * 1e6) / load.requests,
    redisCpuMicrosPerGet: (redisCpu * 1e6) / load.requests,
    redisCommandsPerGet: perGet,
    commands,
    logBytesPerGet: (server.logBytes() - logBefore) / load.requests,
  };
}

async function redisCpuSeconds(redis: BenchRedis): Promise<number> {
  const info = await redis.client.info('cpu');
  return Number(infoField(info, 'used_cpu_user')) + Number(infoField(info, 'used_cpu_sys'));
}

export interface IdleCommands {
  seconds: number;
  commands: Record<string, number>;
}

/** What Redis sees with both servers idle: the vault's scheduler, heartbeat and outbox sweep. */
export async function idleCommands(redis: BenchRedis, ms: number): Promise<IdleCommands> {
  const before = await commandCalls(redis.client);
  await sleep(ms);
  const commands = callsBetween(before, await commandCalls(redis.client));
  delete commands.info;
  return { seconds: ms / 1000, commands };
}

/** PUT a GitHub-like credential for user-0 .. user-(n-1), 16 at a time; returns the GET body size. */
export async function populate(vault: RunningServer, setup: VaultSetup, users: number): Promise<number> {
  const hex = (bytes: number) => randomBytes(bytes).toString('hex');
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < users) {
        const user = `user-${next++}`;
        const put = await http(vault.port, 'PUT', `/tokens/${user}/${PROVIDER}`, {
          headers: setup.auth,
          body: { type: 'oauth2', access_token: `ghu_${hex(18)}`, refresh_token: `ghr_${hex(38)}`, expires_in: 86_400, token_type: 'bearer', scope: 'repo', account_id: String(10_000_000 + next) },
        });
        if (put.status !== 201) throw new Error(`PUT ${user}: ${put.status} ${put.text}`);
      }
    }),
  );
  const get = await http(vault.port, 'GET', `/tokens/user-0/${PROVIDER}`, { headers: setup.auth });
  return Buffer.byteLength(get.text);
}

/**
 * The baseline's records: each vault record's HASH, copied with the sealed blob replaced by the
 * vault's JSON answer padded with spaces to the blob's length (JSON.parse ignores them).
 */
export async function copyForBaseline(redis: BenchRedis, vault: RunningServer, setup: VaultSetup, users: number): Promise<void> {
  const keys = new Keys('tv:');
  for (let from = 0; from < users; from += 100) {
    const batch = Array.from({ length: Math.min(100, users - from) }, (_, i) => `user-${from + i}`);
    const bodies = await Promise.all(batch.map((user) => http(vault.port, 'GET', `/tokens/${user}/${PROVIDER}`, { headers: setup.auth })));
    const pipeline = redis.client.pipeline();
    for (const [i, user] of batch.entries()) {
      const record = await redis.client.hgetallBuffer(keys.credential(user, PROVIDER));
      const blob = record.blob as Buffer;
      const body = (bodies[i] as { text: string }).text;
      const { blob: _blob, ...clear } = record;
      pipeline.hset(baselineKey(user, PROVIDER), { ...clear, body: body.padEnd(Math.max(blob.length, body.length), ' ') });
    }
    await pipeline.exec();
  }
}

export async function checkSameAnswer(vault: RunningServer, baseline: RunningServer, setup: VaultSetup): Promise<void> {
  const path = `/tokens/user-7/${PROVIDER}`;
  const [a, b] = await Promise.all([http(vault.port, 'GET', path, { headers: setup.auth }), http(baseline.port, 'GET', path)]);
  const strip = (body: unknown) => ({ ...(body as Record<string, unknown>), expires_in: 0 });
  if (a.status !== 200 || b.status !== 200 || JSON.stringify(strip(a.body)) !== JSON.stringify(strip(b.body))) {
    throw new Error(`the baseline does not answer what the vault answers:\nvault ${a.status} ${a.text}\nbaseline ${b.status} ${b.text}`);
  }
}

if (require.main === module) runSuiteMain(run);
