/**
 * Refresh engine figures, in this process, against a fresh redis-server on loopback:
 *   - sealed credential writes/s: `credentials` records sealed and written through the store
 *     (the PUT path without HTTP), 1,000 at a time
 *   - scheduler claims/s: claim-due over 128 shards per call, as the scheduler does on one
 *     Redis, until every due entry is leased
 *   - end-to-end refreshes/s: the real Scheduler + Refresher (64 workers) against a local token
 *     endpoint that answers at once
 * (GET latency against the number of stored credentials is the scale suite's, on the real vault
 * process.)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import { resolveConfig } from '../src/config/load';
import type { OAuth2Credential } from '../src/credentials/credential';
import { SealedCredentials } from '../src/credentials/sealed-credentials';
import { Envelope } from '../src/crypto/envelope';
import { LocalKeyWrapper } from '../src/crypto/key-wrapper';
import { Keyring } from '../src/crypto/keyring';
import { createDeps, type Deps } from '../src/deps';
import { Secret } from '../src/secret';
import { onCleanup } from './lib/cleanup';
import { figure, type SuiteResult } from './lib/figures';
import type { BenchOptions } from './lib/options';
import { startRedis, VOLATILE_REDIS } from './lib/redis';
import { progress, runSuiteMain } from './lib/suite';

const SUITE = 'refresh';
const PROVIDER = 'bench';

export async function run(options: BenchOptions): Promise<SuiteResult> {
  const count = options.credentials;
  const e2eWindowMs = options.quick ? 10_000 : 20_000;
  const provider = await fastProvider();
  const redis = await startRedis(VOLATILE_REDIS);
  const deps = await vaultDeps(redis.url, provider.url);
  const stopDeps = onCleanup('refresh deps', () => deps.close());
  try {
    const sealed = new SealedCredentials({
      store: deps.store,
      envelope: new Envelope(new LocalKeyWrapper(deps.keyring)),
      clock: deps.clock,
      metrics: deps.metrics,
      logger: deps.logger,
      schedule: deps.config.refresh,
    });
    const config = deps.providers.get(PROVIDER);
    if (!config) throw new Error('the bench provider is not configured');
    const now = Date.now();
    // Issued an hour ago and expired: refresh_at is in the past, every entry is due.
    const credential = (i: number): OAuth2Credential => ({
      type: 'oauth2',
      accessToken: new Secret(`at-${i}-${'x'.repeat(30)}`),
      refreshToken: new Secret(`rt-${i}-${'y'.repeat(60)}`),
      idToken: null,
      tokenType: 'Bearer',
      scope: 'repo',
      expiresAt: now - 1000,
      refreshExpiresAt: null,
      issuedAt: now - 3_600_000,
      accountId: null,
      metadata: null,
    });

    progress(SUITE, `writing ${count} sealed credentials`);
    const writeStart = performance.now();
    for (let i = 0; i < count; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, count - i) }, (_, j) => sealed.write(`user-${i + j}`, PROVIDER, config, credential(i + j))));
    }
    const writeSeconds = (performance.now() - writeStart) / 1000;

    // Claim throughput: lease every due entry as the scheduler does on one Redis, 128 shards per
    // claim-due call, here up to 200 entries per call (a scheduler with 200 free workers).
    progress(SUITE, 'claiming every due entry');
    await resetSchedule(deps);
    let claimed = 0;
    let empty = 0;
    const claimStart = performance.now();
    for (let cursor = 0; claimed < count && empty < 1024 / 128; cursor = (cursor + 128) % 1024) {
      const shards = Array.from({ length: 128 }, (_, i) => cursor + i);
      const { claims, failures } = await deps.store.claimDueMany(shards, 200, 30_000, `bench-${claimed}`);
      if (failures.length > 0) throw failures[0] as Error;
      const got = claims.reduce((sum, claim) => sum + claim.members.length, 0);
      // A full turn of the shards without a claim: nothing is due any more.
      empty = got === 0 ? empty + 1 : 0;
      claimed += got;
    }
    const claimSeconds = (performance.now() - claimStart) / 1000;

    // End to end: the real scheduler against the fast provider.
    progress(SUITE, `scheduled refreshes for up to ${e2eWindowMs / 1000} s`);
    await resetSchedule(deps);
    provider.count = 0;
    deps.scheduler.start();
    const e2eStart = performance.now();
    while (provider.count < count && performance.now() - e2eStart < e2eWindowMs) await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    const e2eSeconds = (performance.now() - e2eStart) / 1000;
    const refreshed = provider.count;
    await deps.scheduler.stop();

    return {
      suite: SUITE,
      title: `refresh engine, ${count.toLocaleString('en-US')} credentials, in-process, redis-server on loopback`,
      figures: [
        figure('refresh.writes', 'sealed credential writes (store, no HTTP)', count / writeSeconds, 'records/s'),
        figure('refresh.claims', 'scheduler claims, one process', claimed / claimSeconds, 'claims/s', { target: { op: '>=', value: 5000 } }),
        figure('refresh.e2e', 'scheduled refreshes end to end (64 workers, instant token endpoint)', refreshed / e2eSeconds, 'refreshes/s'),
      ],
      details: { count, writeSeconds, claimed, claimSeconds, refreshed, e2eSeconds },
    };
  } finally {
    stopDeps();
    await deps.close();
    await redis.stop();
    provider.server.close();
  }
}

/** Takes every lease back and puts every due entry at score 0 (the records' refresh_at stays). */
async function resetSchedule(deps: Deps): Promise<void> {
  const pipeline = deps.redis.pipeline();
  for (let shard = 0; shard < 1024; shard++) {
    const key = deps.keys.shardKey(shard, 'due');
    pipeline.eval("for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do redis.call('ZADD', KEYS[1], 0, m) end return 0", 1, key);
    pipeline.del(deps.keys.shardKey(shard, 'leases'));
  }
  await pipeline.exec();
}

async function vaultDeps(redisUrl: string, tokenUrl: string): Promise<Deps> {
  const loaded = resolveConfig(
    {
      keyring: JSON.parse(Keyring.generateJson('k1')) as unknown,
      callers: [{ name: 'bench', key: 'bench-key', scopes: ['tokens:read', 'tokens:write'], providers: ['*'] }],
      providers: { [PROVIDER]: { type: 'oauth2', clientId: 'c', clientSecret: 's', tokenUrl, maxConcurrency: 64 } },
      refresh: { workers: 64 },
      redis: { url: redisUrl },
    },
    { env: { LOG_LEVEL: 'silent' }, mode: 'development', baseDir: process.cwd() },
  );
  const sink: DestinationStream = { write: () => undefined };
  return createDeps(loaded, { logDestination: sink, pollMs: 10 });
}

/** A token endpoint that answers every refresh at once, counting them. */
async function fastProvider(): Promise<{ url: string; server: Server; count: number }> {
  const state = { url: '', server: createServer(), count: 0 };
  let n = 0;
  state.server.on('request', (req, res) => {
    req.resume();
    req.on('end', () => {
      state.count++;
      n++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ access_token: `new-${n}`, refresh_token: `rt-new-${n}`, expires_in: 3600, token_type: 'Bearer' }));
    });
  });
  await new Promise<void>((resolveListen) => state.server.listen(0, '127.0.0.1', resolveListen));
  state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/token`;
  return state;
}

if (require.main === module) runSuiteMain(run);
