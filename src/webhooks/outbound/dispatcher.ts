import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../clock';
import type { AuditLog } from '../../observability/logger';
import type { Metrics } from '../../observability/metrics';
import type { Delivery, DeliveryStore } from '../../store/delivery-store';
import { signWebhook } from './signer';
import type { Subscriber } from './subscribers';

export interface DispatcherSettings {
  /** Seconds before each attempt (the first is the immediate one); after the last, a dead letter. */
  retrySchedule: readonly number[];
  timeoutMs: number;
  /** Attempts in flight on this replica at most. */
  concurrency: number;
  /** How often to look for due deliveries. */
  pollMs: number;
}

export interface DispatcherDeps {
  deliveries: DeliveryStore;
  subscribers: readonly Subscriber[];
  clock: Clock;
  logger: Logger;
  audit: AuditLog;
  metrics: Metrics;
  fetch?: typeof fetch;
  replicaId: string;
  settings: DispatcherSettings;
}

type Attempt = { result: 'delivered' | 'retry' | 'failed'; status: number | null; reason: string };

/**
 * Sends due deliveries, on every replica: claims them with a lease (one replica per attempt),
 * signs each attempt afresh (webhook-timestamp and webhook-signature are new every time; the
 * webhook-id is the event's, the same on every attempt, for the receiver to deduplicate) and
 * records the outcome. 2xx is delivered; 5xx, 429, timeouts and network errors are retried on
 * the schedule; any other answer (4xx, a redirect) fails at once, as does the last retry: the
 * delivery becomes a dead letter an operator can retry. Runs beside token calls and refreshes,
 * never in their way: they only wrote an outbox entry.
 */
export class WebhookDispatcher {
  private readonly fetch: typeof fetch;
  private readonly subscribers: Map<string, Subscriber>;
  private readonly inflight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private again = false;
  private stopped = true;

  constructor(private readonly deps: DispatcherDeps) {
    this.fetch = deps.fetch ?? fetch;
    this.subscribers = new Map(deps.subscribers.map((s) => [s.name, s]));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops claiming and waits (at most `graceMs`) for the attempts in flight. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  /** Looks for due deliveries now (new ones were just created). */
  kick(): void {
    if (this.stopped) return;
    if (this.ticking) this.again = true;
    else this.schedule(0);
  }

  /** Claims what this replica has room for and starts sending it; returns how many it started. */
  async tick(): Promise<number> {
    const { settings, deliveries } = this.deps;
    const room = settings.concurrency - this.inflight.size;
    if (room <= 0) return 0;
    const owner = `${this.deps.replicaId}:${randomUUID()}`;
    const ids = await deliveries.claim(room, this.leaseMs(), owner);
    for (const id of ids) {
      const work = this.attempt(id, owner)
        .catch((err: unknown) => this.deps.logger.error({ delivery: id, err: describe(err) }, 'webhook delivery failed unexpectedly; it is retried when its lease ends'))
        .finally(() => {
          this.inflight.delete(work);
          if (!this.stopped && !this.ticking) this.schedule(0);
        });
      this.inflight.add(work);
    }
    return ids.length;
  }

  private async attempt(id: string, owner: string): Promise<void> {
    const { deliveries, metrics, logger, audit, settings } = this.deps;
    const delivery = await deliveries.get(id);
    if (!delivery) {
      // Its record is gone (edited away in Redis): completing it drops the id from the queue.
      await deliveries.complete(id, owner, { result: 'failed', delayMs: 0, status: null, reason: 'delivery record missing' });
      return;
    }
    const subscriber = this.subscribers.get(delivery.subscriber);
    // A subscriber this replica does not know may be one a newer configuration on another
    // replica added (a rolling deploy): retried on the schedule, so a replica that knows it
    // sends it; a subscriber removed everywhere becomes a dead letter when the schedule ends.
    const outcome: Attempt = subscriber
      ? await this.send(delivery, subscriber)
      : { result: 'retry', status: null, reason: 'subscriber not configured on this replica' };
    // attempts counts the tries before this one; the schedule holds the delay before each try.
    const next = delivery.attempts + 1;
    if (outcome.result === 'retry' && next >= settings.retrySchedule.length) outcome.result = 'failed';
    const delayMs = (settings.retrySchedule[next] ?? 0) * 1000;
    const recorded = await deliveries.complete(id, owner, { ...outcome, delayMs });
    if (!recorded) return;
    metrics.webhookDeliveries.inc({ subscriber: delivery.subscriber, outcome: outcome.result });
    const where = { delivery: id, event: delivery.event, type: delivery.type, subscriber: delivery.subscriber, attempt: next, status: outcome.status, reason: outcome.reason };
    if (outcome.result === 'delivered') logger.info(where, 'webhook delivered');
    else if (outcome.result === 'retry') logger.warn({ ...where, retry_in_ms: delayMs }, 'webhook attempt failed; will retry');
    else {
      logger.error(where, 'webhook delivery failed for good: dead letter (retry it with POST /admin/webhooks/deliveries/:id/retry)');
      audit.record({ action: 'webhook.dead_letter', caller: `replica:${this.deps.replicaId}`, outcome: 'failed', delivery: id, event: delivery.event, subscriber: delivery.subscriber, attempts: next });
    }
  }

  private async send(delivery: Delivery, subscriber: Subscriber): Promise<Attempt> {
    const timestamp = Math.floor(this.deps.clock.now() / 1000);
    const stop = this.deps.metrics.webhookDuration.startTimer({ subscriber: subscriber.name });
    try {
      const response = await this.fetch(subscriber.url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'token-vault',
          'webhook-id': delivery.event,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWebhook(subscriber.keys, delivery.event, timestamp, delivery.body),
        },
        body: delivery.body,
        // A redirect would send the event somewhere the configuration did not name.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.deps.settings.timeoutMs),
      });
      // The answer's body means nothing to us; read it so the connection can be reused.
      await response.arrayBuffer().catch(() => undefined);
      const { status } = response;
      if (status >= 200 && status < 300) return { result: 'delivered', status, reason: 'ok' };
      if (status === 429 || status >= 500) return { result: 'retry', status, reason: `HTTP ${status}` };
      return { result: 'failed', status, reason: status >= 300 && status < 400 ? `HTTP ${status} (redirects are not followed)` : `HTTP ${status}` };
    } catch (err) {
      const name = (err as { name?: unknown } | null)?.name;
      return { result: 'retry', status: null, reason: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network error' };
    } finally {
      stop();
    }
  }

  /** An attempt (timeout included) ends well inside its lease. */
  private leaseMs(): number {
    return this.deps.settings.timeoutMs * 3;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runTick(), delayMs);
    this.timer.unref();
  }

  private async runTick(): Promise<void> {
    if (this.stopped || this.ticking) return;
    this.again = false;
    this.ticking = this.tick()
      .then(() => undefined)
      .catch((err: unknown) => this.deps.logger.warn({ err: describe(err) }, 'webhook dispatcher tick failed; retrying'));
    await this.ticking;
    this.ticking = undefined;
    this.schedule(this.again ? 0 : this.deps.settings.pollMs);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
