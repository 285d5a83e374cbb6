/**
 * Fills a redis-server with sealed credentials fast, for the scale suite: forked by
 * bench/scale.ts, one per core, each over its own range of users. Every record is sealed for
 * its own user (the AAD binds user and provider, so one sealed record cannot be copied to
 * another user) with the vault's Envelope, then written with pipelined raw commands, laid out
 * as src/store/lua/put-credential.lua lays out a PUT:
 *
 *   HSET  <prefix>{s<n>}:cred:<user>:<provider>  version kek state updated_at created_at type blob
 *                                                expires_at scope account_id refresh_at
 *   SADD  <prefix>{s<n>}:user:<user>  <provider>
 *   ZADD  <prefix>{s<n>}:due  <refresh_at>  <user>:<provider>
 *
 * and, per shard at the end, the counters the script keeps: HINCRBY kek <kek id>, HINCRBY
 * states active. Versions are the user's index + 1 (unique); scale.ts sets every shard's seq
 * counter above them.
 */
import { randomFillSync } from 'node:crypto';
import { Redis } from 'ioredis';
import { encodeCredential } from '../src/credentials/credential';
import { Envelope } from '../src/crypto/envelope';
import { LocalKeyWrapper } from '../src/crypto/key-wrapper';
import { Keyring } from '../src/crypto/keyring';
import { KeyringHolder } from '../src/crypto/keyring-holder';
import { refreshAt } from '../src/refresh/schedule';
import { Secret } from '../src/secret';
import { dueMember, Keys, shardOf } from '../src/store/keys';
import { githubLike } from './lib/credentials';

export interface FillJob {
  redisUrl: string;
  keyPrefix: string;
  keyringJson: string;
  provider: string;
  /** Users user-<from> .. user-<to - 1>. */
  from: number;
  to: number;
  now: number;
}

export type FillMessage = { kind: 'progress'; done: number } | { kind: 'done'; count: number; sealMs: number; writeMs: number };

const BATCH = 500;

/** The access token stored for user-<i>: GETs can check they read the right user's record. */
export function expectedAccessToken(i: number): string {
  return `ghu_${i.toString(16).padStart(36, '0')}`;
}

/**
 * Random bytes for the envelope, taken from a 64 KB block refilled by randomFillSync: the same
 * CSPRNG bytes, never handed out twice, without crypto.randomBytes's per-call cost (three calls
 * per seal; a third of the fill's time otherwise). The vault itself keeps randomBytes.
 */
function pooledRandom(): (n: number) => Buffer {
  let pool = randomFillSync(Buffer.allocUnsafe(65_536));
  let at = 0;
  return (n) => {
    if (at + n > pool.length) {
      pool = randomFillSync(Buffer.allocUnsafe(65_536));
      at = 0;
    }
    at += n;
    return pool.subarray(at - n, at);
  };
}

export async function fill(job: FillJob, report: (message: FillMessage) => void): Promise<void> {
  const keyring = Keyring.parse(job.keyringJson);
  const random = pooledRandom();
  const envelope = new Envelope(new LocalKeyWrapper(new KeyringHolder(keyring), random), random);
  const kekId = keyring.activeId;
  const keys = new Keys(job.keyPrefix);
  const redis = new Redis(job.redisUrl, { maxRetriesPerRequest: 1 });
  const perShard = new Map<number, number>();
  const template = githubLike(job.now);
  let sealMs = 0;
  let inFlight: Promise<unknown> = Promise.resolve();
  const started = performance.now();
  try {
    for (let from = job.from; from < job.to; from += BATCH) {
      const pipeline = redis.pipeline();
      const sealStart = performance.now();
      for (let i = from; i < Math.min(from + BATCH, job.to); i++) {
        const user = `user-${i}`;
        const credential = { ...template, accessToken: new Secret(expectedAccessToken(i)), accountId: String(10_000_000 + i) };
        const blob = await envelope.seal(encodeCredential(credential), { user, provider: job.provider });
        const due = refreshAt(credential.issuedAt, credential.expiresAt, 3600, { skewSeconds: 300, jitterSeconds: 30 });
        const now = String(job.now);
        pipeline.hset(keys.credential(user, job.provider),
          'version', i + 1, 'kek', kekId, 'state', 'active', 'updated_at', now, 'created_at', now, 'type', 'oauth2',
          'blob', blob, 'expires_at', String(credential.expiresAt), 'scope', credential.scope ?? '',
          'account_id', credential.accountId ?? '', 'refresh_at', String(due));
        pipeline.sadd(keys.userIndex(user), job.provider);
        pipeline.zadd(keys.due(user), due, dueMember(user, job.provider));
        const shard = shardOf(user);
        perShard.set(shard, (perShard.get(shard) ?? 0) + 1);
      }
      sealMs += performance.now() - sealStart;
      // One batch in flight while the next one is sealed.
      await inFlight;
      inFlight = pipeline.exec();
      if ((from - job.from) % 50_000 === 0) report({ kind: 'progress', done: from - job.from });
    }
    await inFlight;
    const counters = redis.pipeline();
    for (const [shard, count] of perShard) {
      counters.hincrby(keys.shardKey(shard, 'kek'), kekId, count);
      counters.hincrby(keys.shardKey(shard, 'states'), 'active', count);
    }
    await counters.exec();
  } finally {
    redis.disconnect();
  }
  report({ kind: 'done', count: job.to - job.from, sealMs, writeMs: performance.now() - started - sealMs });
}

if (require.main === module) {
  process.once('message', (job: FillJob) => {
    fill(job, (message) => process.send?.(message)).then(
      () => process.disconnect(),
      (err: unknown) => {
        process.stderr.write(`fill-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exit(1);
      },
    );
  });
}
