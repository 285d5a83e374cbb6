/**
 * Rewrap throughput: N records sealed under k1 are re-wrapped under k2 by the real rewrap job
 * (SCAN batches, pipelined reads and compare-and-set writes), unthrottled, on a fresh
 * redis-server on loopback. Target on a 2-core machine: ≥ 20,000 records/s.
 */
import { randomBytes } from 'node:crypto';
import { resolveConfig } from '../src/config/load';
import type { OAuth2Credential } from '../src/credentials/credential';
import { SealedCredentials } from '../src/credentials/sealed-credentials';
import { createDeps } from '../src/deps';
import { Secret } from '../src/secret';
import { RedisServer } from '../test/helpers/redis-server';

const COUNT = Number(process.env.BENCH_CREDENTIALS ?? 100_000);

async function main(): Promise<void> {
  const redis = await RedisServer.start(['--appendonly', 'no']);
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
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  const deps = await createDeps(loaded, { logDestination: sink as never });
  try {
    await deps.keyAdmin.start();
    const sealed = new SealedCredentials({ store: deps.store, envelope: (deps.rewrap as unknown as { deps: { envelope: never } }).deps.envelope, clock: deps.clock, metrics: deps.metrics, logger: deps.logger, schedule: loaded.config.refresh });
    const provider = deps.providers.get('bench')!;
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
    for (let i = 0; i < COUNT; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, COUNT - i) }, (_, j) => sealed.write(`user-${i + j}`, 'bench', provider, credential(i + j))));
    }
    // Activate k2 (every live replica, this one, holds it).
    await deps.redis.set(deps.keys.activeKek(), 'k2');
    await deps.keyAdmin.heartbeat();
    const started = process.hrtime.bigint();
    let job = await deps.rewrap.start('bench');
    while (job.state === 'running') {
      await new Promise((resolve) => setTimeout(resolve, 50));
      job = (await deps.rewrap.get(job.id))!;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const counts = await deps.keyAdmin.recordsByKek();
    console.log(`\nRewrap (${COUNT} records, redis-server on loopback, node ${process.version})\n`);
    console.log(`records re-wrapped            ${job.done} (failed ${job.failed}, skipped ${job.skipped}); k1 now protects ${counts.k1 ?? 0}, k2 ${counts.k2 ?? 0}`);
    console.log(`rewrap throughput (records/s) ${(job.done / seconds).toFixed(0)}  (target ≥ 20,000; ${seconds.toFixed(2)} s)`);
  } finally {
    await deps.close();
    await redis.stop();
  }
}

void main();
