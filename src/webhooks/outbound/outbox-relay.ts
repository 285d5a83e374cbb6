import { Cluster } from 'ioredis';
import type { Logger } from 'pino';
import type { DeliveryStore } from '../../store/delivery-store';
import type { Keys } from '../../store/keys';
import { withStoreErrors, type RedisClient } from '../../store/redis';
import { decodeOutboxEntry, webhookBody } from './outbox';
import { deliveryId, type Subscriber } from './subscribers';

export interface OutboxRelayDeps {
  redis: RedisClient;
  keys: Keys;
  deliveries: DeliveryStore;
  subscribers: readonly Subscriber[];
  logger: Logger;
  /** Called when deliveries were created, so they are sent at once. */
  onDeliveries: () => void;
  /** How often every outbox is looked at, for events whose replica died before moving them. */
  sweepMs: number;
}

const BATCH = 100;

/**
 * Moves events from the outboxes (written by the step that made each change) into deliveries,
 * one per subscriber whose filter matches. The replica that made a change wakes the relay for
 * that outbox at once; every replica also sweeps all outboxes now and then, which picks up what
 * a replica that died after its change left behind. An event is removed from its outbox only
 * after its deliveries exist, and creating them twice creates them once, so a crash at any
 * point neither loses nor duplicates a delivery.
 */
export class OutboxRelay {
  private readonly draining = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private stopped = true;

  constructor(private readonly deps: OutboxRelayDeps) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    // The first sweep runs at once: a restarted vault delivers what it left behind.
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.allSettled([this.sweeping, ...this.draining.values()]);
  }

  /** Moves whatever is in one outbox now (a change was just written to it). */
  kick(outbox: string): void {
    if (this.stopped) return;
    void this.drain(outbox).catch((err: unknown) => this.deps.logger.warn({ err: describe(err) }, 'outbox relay failed; the sweep will retry'));
  }

  /** Looks at every outbox once and moves what it finds. */
  async sweep(): Promise<void> {
    const { redis } = this.deps;
    const outboxes = this.deps.keys.allOutboxes();
    // On one Redis, one script call for all of them. On a cluster the outboxes are in different
    // hash slots, which one script (or one explicit pipeline) cannot span: one LLEN each, sent
    // at once.
    const lengths = await withStoreErrors(() =>
      redis instanceof Cluster ? Promise.all(outboxes.map((key) => redis.llen(key))) : redis.listLengths(outboxes.length, ...outboxes),
    );
    const waiting = outboxes.filter((_, i) => (lengths[i] ?? 0) > 0);
    for (const key of waiting) await this.drain(key);
  }

  /** One relay at a time per outbox on this replica; others on other replicas are harmless. */
  private drain(outbox: string): Promise<void> {
    const running = this.draining.get(outbox);
    if (running) return running.then(() => this.drain(outbox));
    const work = this.move(outbox).finally(() => this.draining.delete(outbox));
    this.draining.set(outbox, work);
    return work;
  }

  private async move(outbox: string): Promise<void> {
    const { redis, deliveries, subscribers, logger } = this.deps;
    for (;;) {
      const raw = await withStoreErrors(() => redis.lrange(outbox, 0, BATCH - 1));
      if (raw.length === 0) return;
      let created = 0;
      for (const text of raw) {
        const entry = decodeOutboxEntry(text);
        if (entry === null) {
          logger.error({ outbox }, 'dropping an outbox entry that is not an event');
        } else {
          const body = webhookBody(entry);
          const targets = subscribers.filter((s) => s.accepts(entry.type)).map((s) => ({ id: deliveryId(entry.id, s.name), subscriber: s.name }));
          created += await deliveries.enqueue({ id: entry.id, type: entry.type, body }, targets);
        }
        await withStoreErrors(() => redis.lrem(outbox, 1, text));
      }
      if (created > 0) this.deps.onDeliveries();
      if (raw.length < BATCH) return;
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.sweeping = this.sweep()
        .catch((err: unknown) => this.deps.logger.warn({ err: describe(err) }, 'outbox sweep failed; retrying'))
        .finally(() => {
          this.sweeping = undefined;
          this.schedule(this.deps.sweepMs);
        });
    }, delayMs);
    this.timer.unref();
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
