import type { Keys } from './keys';
import { toStoreError, withStoreErrors, type RedisClient } from './redis';

/**
 * Outbound webhook deliveries, one per (event, subscriber), under the {webhooks} hash tag:
 *
 *   delivery:<id>  HASH  id, event (the webhook-id), type, subscriber, body (sent byte for byte on
 *                        every attempt), status (pending | delivered | failed), attempts,
 *                        created_at, next_at, last_attempt_at, last_status, last_error,
 *                        delivered_at | failed_at
 *   pending        ZSET  id -> next attempt (ms), or the lease deadline while an attempt runs
 *   leases         HASH  id -> owner of the attempt in flight
 *   failed         ZSET  dead letters by when they failed; kept until an operator retries them
 *   delivered      ZSET  successes of the last day by when they were delivered
 *
 * Events reach it from the outboxes (webhooks/outbound/outbox-relay.ts); the dispatcher claims,
 * sends and completes deliveries.
 */
export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface Delivery {
  id: string;
  event: string;
  type: string;
  subscriber: string;
  body: string;
  status: DeliveryStatus;
  attempts: number;
  createdAt: number;
  nextAt: number | null;
  lastAttemptAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: number | null;
  failedAt: number | null;
}

export interface NewDelivery {
  id: string;
  subscriber: string;
}

/** How long delivered deliveries stay visible to operators. */
export const DELIVERED_KEPT_MS = 24 * 60 * 60 * 1000;

const FIELDS = [
  'id',
  'event',
  'type',
  'subscriber',
  'body',
  'status',
  'attempts',
  'created_at',
  'next_at',
  'last_attempt_at',
  'last_status',
  'last_error',
  'delivered_at',
  'failed_at',
] as const;

export class DeliveryStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  /** Creates the deliveries of one event that do not exist yet; returns how many were created. */
  async enqueue(event: { id: string; type: string; body: string }, deliveries: NewDelivery[]): Promise<number> {
    if (deliveries.length === 0) return 0;
    const keys = [this.keys.deliveries('pending'), ...deliveries.map((d) => this.keys.delivery(d.id))];
    const args = [event.id, event.type, event.body, ...deliveries.flatMap((d) => [d.id, d.subscriber])];
    return withStoreErrors(() => this.redis.enqueueDeliveries(keys.length, ...keys, ...args));
  }

  /** Leases up to `limit` due deliveries to `owner`. */
  async claim(limit: number, leaseMs: number, owner: string): Promise<string[]> {
    const [, ...ids] = await withStoreErrors(() => this.redis.claimDeliveries(this.keys.deliveries('pending'), this.keys.deliveryLeases(), limit, leaseMs, owner));
    return ids;
  }

  async get(id: string): Promise<Delivery | null> {
    const row = await withStoreErrors(() => this.redis.hmget(this.keys.delivery(id), ...FIELDS));
    return parseDelivery(row);
  }

  /** Records an attempt's outcome; false when the lease was no longer `owner`'s. */
  async complete(
    id: string,
    owner: string,
    outcome: { result: 'delivered' | 'retry' | 'failed'; delayMs: number; status: number | null; reason: string },
  ): Promise<boolean> {
    const [recorded] = await withStoreErrors(() =>
      this.redis.completeDelivery(
        this.keys.delivery(id),
        this.keys.deliveries('pending'),
        this.keys.deliveryLeases(),
        this.keys.deliveries('failed'),
        this.keys.deliveries('delivered'),
        id,
        owner,
        outcome.result,
        Math.max(0, Math.round(outcome.delayMs)),
        outcome.status === null ? '' : String(outcome.status),
        outcome.reason,
        DELIVERED_KEPT_MS,
      ),
    );
    return recorded === 1;
  }

  /** Starts a fresh retry schedule now; false when there is no such delivery. */
  async retry(id: string): Promise<boolean> {
    const done = await withStoreErrors(() =>
      this.redis.retryDelivery(this.keys.delivery(id), this.keys.deliveries('pending'), this.keys.deliveries('failed'), this.keys.deliveries('delivered'), id),
    );
    return done === 1;
  }

  /** The newest deliveries with a status, at most `limit` (failed and delivered newest first; pending by next attempt). */
  async list(status: DeliveryStatus, limit: number): Promise<Delivery[]> {
    const index = this.keys.deliveries(status);
    const ids = await withStoreErrors(() => (status === 'pending' ? this.redis.zrange(index, '0', String(limit - 1)) : this.redis.zrange(index, '0', String(limit - 1), 'REV')));
    if (ids.length === 0) return [];
    // One pipeline is fine on a cluster too: every delivery key carries the {webhooks} tag.
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hmget(this.keys.delivery(id), ...FIELDS);
    const rows = (await withStoreErrors(() => pipeline.exec())) ?? [];
    return rows.flatMap(([err, row]) => {
      if (err) throw toStoreError(err);
      const delivery = parseDelivery(row as (string | null)[]);
      return delivery ? [delivery] : [];
    });
  }

  async counts(): Promise<{ pending: number; failed: number }> {
    const [pending, failed] = await withStoreErrors(() =>
      Promise.all([this.redis.zcard(this.keys.deliveries('pending')), this.redis.zcard(this.keys.deliveries('failed'))]),
    );
    return { pending, failed };
  }
}

function parseDelivery(row: (string | null)[]): Delivery | null {
  const [id, event, type, subscriber, body, status, attempts, createdAt, nextAt, lastAttemptAt, lastStatus, lastError, deliveredAt, failedAt] = row;
  if (!id || !event || !type || !subscriber || body === null || body === undefined) return null;
  const number = (value: string | null | undefined) => (value === null || value === undefined || value === '' ? null : Number(value));
  return {
    id,
    event,
    type,
    subscriber,
    body,
    status: status === 'delivered' || status === 'failed' ? status : 'pending',
    attempts: number(attempts) ?? 0,
    createdAt: number(createdAt) ?? 0,
    nextAt: number(nextAt),
    lastAttemptAt: number(lastAttemptAt),
    lastStatus: number(lastStatus),
    lastError: lastError || null,
    deliveredAt: number(deliveredAt),
    failedAt: number(failedAt),
  };
}
