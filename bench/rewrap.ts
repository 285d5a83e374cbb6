/**
 * Rewrap throughput: `credentials` records sealed under k1 are re-wrapped under k2 by the real
 * rewrap job (SCAN batches, pipelined reads and compare-and-set writes), unthrottled, in this
 * process, against a fresh redis-server on loopback. Target on a 2-core machine: ≥ 20,000
 * records/s.
 */
import { randomBytes } from 'node:crypto';
import type { DestinationStream } from 'pino';
import { resolveConfig } from '../src/config/load';
import type { OAuth2Credential } from '../src/credentials/credential';
import { SealedCredentials } from '../src/credentials/sealed-credentials';
import { Envelope } from '../src/crypto/envelope';
import { LocalKeyWrapper } from '../src/crypto/key-wrapper';
import { createDeps } from '../src/deps';
import { Secret } from '../src/secret';
import { onCleanup } from './lib/cleanup';
import { figure, type SuiteResult } from './lib/figures';
import type { BenchOptions } from './lib/options';
import { startRedis, VOLATILE_REDIS } from './lib/redis';
import { progress, runSuiteMain } from './lib/suite';

const SUITE = 'rewrap';

export async function run(options: BenchOptions): Promise<SuiteResult> {
  const count = options.credentials;
  const redis = await startRedis(VOLATILE_REDIS);
  const keyring = { active: 'k1', keys: { k1: randomBytes(32).toString('base64'), k2: randomBytes(32).toString('base64') } };
  const loaded = resolveConfig(
    {
      keyring,
      callers: [{ name: 'bench', key: 'bench-key', scopes: ['admin'], providers: ['*'] }],
      providers: { bench: { type: 'oauth2', clientId: 'c', clientSecret: 's', tokenUrl: 'http://127.0.0.1:1/token' } },
      redis: { url: redis.url },
    },
    { env: { LOG_LEVEL: 'silent' }, mode: 'development', baseDir: process.cwd() },
  );
  const sink: DestinationStream = { write: () => undefined };
  const deps = await createDeps(loaded, { logDestination: sink });
  const stopDeps = onCleanup('rewrap deps', () => deps.close());
  try {
    await deps.keyAdmin.start();
    const sealed = new SealedCredentials({
      store: deps.store,
      envelope: new Envelope(new LocalKeyWrapper(deps.keyring)),
      clock: deps.clock,
      metrics: deps.metrics,
      logger: deps.logger,
      schedule: loaded.config.refresh,
    });
    const provider = deps.providers.get('bench');
    if (!provider) throw new Error('the bench provider is not configured');
    const now = Date.now();
    const credential = (i: number): OAuth2Credential => ({
      type: 'oauth2',
      accessToken: new Secret(`at-${i}-${'x'.repeat(30)}`),
      refreshToken: new Secret(`rt-${i}-${'y'.repeat(60)}`),
      idToken: null,
      tokenType: 'Bearer',
      scope: 'repo',
      expiresAt: now + 3_600_000,
      refreshExpiresAt: null,
      issuedAt: now,
      accountId: null,
      metadata: null,
    });
    progress(SUITE, `writing ${count} records under k1`);
    for (let i = 0; i < count; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, count - i) }, (_, j) => sealed.write(`user-${i + j}`, 'bench', provider, credential(i + j))));
    }
    // Activate k2 (every live replica, this one, holds it).
    await deps.redis.set(deps.keys.activeKek(), 'k2');
    await deps.keyAdmin.heartbeat();
    progress(SUITE, 're-wrapping under k2');
    const started = performance.now();
    let job = await deps.rewrap.start('bench');
    while (job.state === 'running') {
      await new Promise((resolveWait) => setTimeout(resolveWait, 50));
      const next = await deps.rewrap.get(job.id);
      if (!next) throw new Error(`rewrap job ${job.id} vanished`);
      job = next;
    }
    const seconds = (performance.now() - started) / 1000;
    const counts = await deps.keyAdmin.recordsByKek();
    const warnings = job.state === 'done' && job.failed === 0 && (counts.k1 ?? 0) === 0 ? [] : [`rewrap ended ${job.state}: ${job.done} done, ${job.failed} failed, ${job.skipped} skipped; k1 still protects ${counts.k1 ?? 0}`];
    return {
      suite: SUITE,
      title: `rewrap job, ${count.toLocaleString('en-US')} records k1 → k2, unthrottled, in-process, redis-server on loopback`,
      figures: [figure('rewrap.rate', 'rewrap throughput', job.done / seconds, 'records/s', { target: { op: '>=', value: 20_000 } })],
      warnings,
      details: { done: job.done, failed: job.failed, skipped: job.skipped, seconds, recordsByKek: counts },
    };
  } finally {
    stopDeps();
    await deps.close();
    await redis.stop();
  }
}

if (require.main === module) runSuiteMain(run);
