import { randomUUID } from 'node:crypto';
import { ReplyError } from 'ioredis';
import type { Logger } from 'pino';
import type { Envelope } from '../crypto/envelope';
import type { KeyringHolder } from '../crypto/keyring-holder';
import { InvalidRequestError, NotFoundError } from '../errors';
import { newEventId, type EventBus } from '../events/event-bus';
import type { AuditLog } from '../observability/logger';
import type { Keys } from '../store/keys';
import { withStoreErrors, type RedisClient } from '../store/redis';
import { walkStep } from '../store/topology';
import { encodeOutboxEntry } from '../webhooks/outbound/outbox';
import type { KeyAdmin } from './key-admin';

/**
 * The rewrap job (DESIGN §6): re-wraps the data key of every record sealed under a key other
 * than the active one, leaving each record's IV and ciphertext byte-identical, so old keys can
 * be retired. One job at a time across replicas. The job walks the keyspace with SCAN in
 * batches (reads, then compare-and-set writes, each sent at once: pipelined per Redis node,
 * store/redis.ts) and persists its cursor after each batch under an owner lease; if its
 * replica dies, another replica's watch takes the lease over when it lapses and resumes from
 * the cursor. On a Redis Cluster the cursor holds one SCAN cursor per master (store/topology.ts,
 * walkStep). Re-processing part of a batch is harmless: a record already under the target key
 * is skipped.
 */
export interface RewrapJobView {
  id: string;
  state: 'running' | 'done' | 'failed';
  target: string;
  total: number;
  done: number;
  failed: number;
  skipped: number;
  rate: number;
  eta_seconds: number | null;
  started_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface RewrapDeps {
  redis: RedisClient;
  keys: Keys;
  holder: KeyringHolder;
  envelope: Envelope;
  keyAdmin: KeyAdmin;
  events: EventBus;
  audit: AuditLog;
  logger: Logger;
  replicaId: string;
  /** 0: unthrottled. */
  recordsPerSecond: number;
  batchSize?: number;
  leaseMs?: number;
  /** How often each replica looks for a job whose owner died. */
  watchMs?: number;
}

/** Clears the current-job pointer only if it still names this job. */
const CLEAR_CURRENT = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

export class RewrapJobs {
  private running: string | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly owner: string;
  private readonly batchSize: number;
  private readonly leaseMs: number;

  constructor(private readonly deps: RewrapDeps) {
    this.owner = `${deps.replicaId}:rewrap`;
    // Keys examined per SCAN (about a third are records). A throttled job takes smaller batches
    // so its pace is smooth rather than bursts of a whole batch followed by a long sleep.
    this.batchSize = deps.batchSize ?? (deps.recordsPerSecond > 0 ? Math.min(5000, Math.max(100, Math.round(deps.recordsPerSecond))) : 5000);
    this.leaseMs = deps.leaseMs ?? 30_000;
  }

  /** Looks every watchMs for a running job without a live owner and resumes it. */
  watch(): void {
    this.timer = setInterval(() => void this.resumeOrphan().catch((err: unknown) => this.deps.logger.warn({ err: String(err) }, 'rewrap watch failed')), this.deps.watchMs ?? 5000);
    this.timer.unref();
  }

  /** Stops this replica's work; its lease is given up so another replica resumes at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const id = this.running;
    if (id) await this.deps.redis.hset(this.deps.keys.rewrapJob(id), 'lease_until', 0).catch(() => undefined);
  }

  /** POST /admin/rewrap: starts a job, or answers the one already running. */
  async start(caller: string): Promise<RewrapJobView> {
    const { redis, keys, holder } = this.deps;
    const currentId = await withStoreErrors(() => redis.get(keys.rewrapCurrent()));
    if (currentId) {
      const current = await this.get(currentId);
      if (current?.state === 'running') return current;
      // A pointer left by a job that ended without clearing it: it must not block new jobs.
      await withStoreErrors(() => redis.eval(CLEAR_CURRENT, 1, keys.rewrapCurrent(), currentId));
    }
    const target = await withStoreErrors(() => redis.get(keys.activeKek()));
    if (!target || !holder.get()?.has(target)) {
      throw new InvalidRequestError('this replica does not hold the active key yet; reload its keyring first');
    }
    const counts = await this.deps.keyAdmin.recordsByKek();
    const total = Object.entries(counts).reduce((sum, [id, n]) => (id === target ? sum : sum + n), 0);
    const id = randomUUID();
    const now = Date.now();
    await withStoreErrors(() =>
      redis.hset(keys.rewrapJob(id), { state: 'running', target, total, done: 0, failed: 0, skipped: 0, cursor: '0', started_at: now, updated_at: now, owner: '', lease_until: 0 }),
    );
    if ((await withStoreErrors(() => redis.set(keys.rewrapCurrent(), id, 'NX'))) === null) {
      // Another replica started one at the same moment: answer that one.
      await redis.del(keys.rewrapJob(id));
      const winner = await withStoreErrors(() => redis.get(keys.rewrapCurrent()));
      const job = winner ? await this.get(winner) : null;
      if (job) return job;
      throw new InvalidRequestError('a rewrap job was starting concurrently; try again');
    }
    this.deps.audit.record({ action: 'key.rewrap.start', caller, outcome: 'ok', job: id, target, total });
    void this.run(id);
    return (await this.get(id))!;
  }

  async get(id: string): Promise<RewrapJobView | null> {
    const job = await withStoreErrors(() => this.deps.redis.hgetall(this.deps.keys.rewrapJob(id)));
    if (!job.state) return null;
    const number = (name: string) => Number(job[name] ?? 0);
    const started = number('started_at');
    const finished = job.finished_at ? number('finished_at') : null;
    const elapsed = ((finished ?? Date.now()) - started) / 1000;
    const rate = elapsed > 0 ? number('done') / elapsed : 0;
    const left = Math.max(0, number('total') - number('done') - number('failed'));
    return {
      id,
      state: job.state as RewrapJobView['state'],
      target: job.target ?? '',
      total: number('total'),
      done: number('done'),
      failed: number('failed'),
      skipped: number('skipped'),
      rate: Math.round(rate),
      eta_seconds: job.state !== 'running' ? 0 : rate > 0 ? Math.ceil(left / rate) : null,
      started_at: new Date(started).toISOString(),
      updated_at: new Date(number('updated_at')).toISOString(),
      finished_at: finished === null ? null : new Date(finished).toISOString(),
    };
  }

  async require(id: string): Promise<RewrapJobView> {
    const job = await this.get(id);
    if (!job) throw new NotFoundError(`no rewrap job "${id}"`);
    return job;
  }

  private async resumeOrphan(): Promise<void> {
    if (this.running || this.stopped) return;
    const id = await this.deps.redis.get(this.deps.keys.rewrapCurrent());
    if (!id) return;
    const [status] = await this.deps.redis.jobLease(this.deps.keys.rewrapJob(id), this.owner, this.leaseMs);
    if (status === 1) {
      this.deps.logger.warn({ job: id }, 'resuming a rewrap job whose replica stopped');
      void this.run(id);
    }
  }

  private async run(id: string): Promise<void> {
    if (this.running) return;
    this.running = id;
    const { redis, keys, envelope, logger } = this.deps;
    const jobKey = keys.rewrapJob(id);
    try {
      for (;;) {
        if (this.stopped) return;
        const [leased] = await redis.jobLease(jobKey, this.owner, this.leaseMs);
        if (leased !== 1) return; // another replica owns it now
        const [cursor, target] = await redis.hmget(jobKey, 'cursor', 'target');
        if (!target) return; // the job's record is gone
        const started = Date.now();
        // Credentials and deleted ones still waiting for upstream revocation: both hold sealed tokens.
        const step = await walkStep(redis, cursor ?? '0', keys.sealedPattern(), this.batchSize, 'hash');
        const next = step.position;
        const batch = step.keys.flatMap((key) => {
          const place = keys.parseSealedKey(key);
          const shard = keys.shardOfKey(key);
          return place && shard !== null ? [{ key, place, kekCounts: keys.shardKey(shard, 'kek') }] : [];
        });
        const rows = await Promise.all(batch.map(({ key }) => redis.hmgetBuffer(key, 'version', 'kek', 'blob')));
        const writes: { key: string; kekCounts: string; version: string; from: string; blob: Buffer }[] = [];
        let failed = 0;
        await Promise.all(
          batch.map(async ({ key, place, kekCounts }, i) => {
            const [version, kek, blob] = rows[i] ?? [];
            if (!version || !kek || !blob || kek.toString() === target) return;
            try {
              writes.push({ key, kekCounts, version: version.toString(), from: kek.toString(), blob: await envelope.rewrap(blob, place, target) });
            } catch (err) {
              failed++;
              logger.error({ job: id, user: place.user, provider: place.provider, kek: kek.toString(), reason: String(err) }, 'rewrap: record could not be opened');
            }
          }),
        );
        const queued = writes.length;
        const results = await Promise.all(
          writes.map(({ key, kekCounts, version, from, blob }) =>
            // The kek counter of the key's own shard tag, so both keys are in one hash slot whatever the key says.
            redis.rewrapCredential(key, kekCounts, version, from, target, blob).catch((err: unknown) => {
              // Refused by Redis for this record alone: counted as skipped, as when it changed meanwhile.
              if (!(err instanceof ReplyError)) throw err;
              logger.error({ job: id, reason: (err as Error).message }, 'rewrap: Redis refused a record update');
              return 0;
            }),
          ),
        );
        const done = results.filter((ok) => ok === 1).length;
        const finished = step.finished;
        if (step.unsettled) logger.warn({ job: id }, 'rewrap: the Redis Cluster slots kept moving during the job; records that moved may still be under old keys, so check GET /admin/keys and run it again');
        const update = redis.multi().hincrby(jobKey, 'done', done).hincrby(jobKey, 'failed', failed).hincrby(jobKey, 'skipped', queued - done).hset(jobKey, 'cursor', next, 'updated_at', Date.now());
        await update.exec();
        if (finished) {
          const counts = (await this.get(id))!;
          // The job's end, the pointer's removal and its event in one step ({jobs} is one hash slot).
          const event = { id: newEventId(), type: 'rewrap.completed' as const, at: Date.now(), data: { job: id, target, rewrapped: counts.done, failed: counts.failed } };
          await redis
            .multi()
            .hset(jobKey, 'state', 'done', 'finished_at', event.at)
            .eval(CLEAR_CURRENT, 1, keys.rewrapCurrent(), id)
            .rpush(keys.globalOutbox('jobs'), encodeOutboxEntry(event))
            .exec();
          const view = counts;
          this.deps.events.emit({ type: 'rewrap.completed', id: event.id, job: id, target: target, rewrapped: view.done, failed: view.failed });
          this.deps.audit.record({ action: 'key.rewrap.done', caller: `replica:${this.deps.replicaId}`, outcome: view.failed > 0 ? 'failed' : 'ok', job: id, target, done: view.done, failed: view.failed });
          logger.info({ job: id, target, done: view.done, failed: view.failed }, 'rewrap job completed');
          return;
        }
        if (this.deps.recordsPerSecond > 0 && done > 0) {
          const wanted = (done / this.deps.recordsPerSecond) * 1000;
          const spent = Date.now() - started;
          if (wanted > spent) await new Promise((resolve) => setTimeout(resolve, wanted - spent));
        }
      }
    } catch (err) {
      logger.error({ job: id, err: String(err) }, 'rewrap job interrupted; another replica will resume it');
      await redis.hset(jobKey, 'lease_until', 0).catch(() => undefined);
    } finally {
      this.running = undefined;
    }
  }

}
