import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics. Labels are bounded: route templates, never paths with user ids; provider
 * ids come from the configuration. One registry per app instance, so tests can build several.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly httpDuration = new Histogram({
    name: 'token_vault_http_request_duration_seconds',
    help: 'HTTP request latency by route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly credentialOperations = new Counter({
    name: 'token_vault_credential_operations_total',
    help: 'Credential writes, reads and deletes by provider and outcome',
    labelNames: ['operation', 'provider', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly decryptFailures = new Counter({
    name: 'token_vault_decrypt_failures_total',
    help: 'Stored records that failed to open (tampered, unknown KEK, unreadable format)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly authFailures = new Counter({
    name: 'token_vault_auth_failures_total',
    help: 'Rejected caller authentications by reason (missing, unknown_key, untrusted_cert, unknown_cert, scope, rate_limited)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly refreshes = new Counter({
    name: 'token_vault_refresh_total',
    help: 'Refresh attempts by provider, trigger (scheduled, on_demand, forced) and outcome',
    labelNames: ['provider', 'trigger', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly refreshDuration = new Histogram({
    name: 'token_vault_refresh_duration_seconds',
    help: 'Token endpoint call latency by provider',
    labelNames: ['provider'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly waitShortfalls = new Counter({
    name: 'token_vault_wait_replicas_shortfall_total',
    help: 'Rotated refresh tokens acknowledged by fewer Redis replicas than redis.waitReplicas',
    registers: [this.registry],
  });

  readonly revocations = new Counter({
    name: 'token_vault_revocations_total',
    help: 'Upstream (RFC 7009) revocation attempts of deleted credentials by provider and outcome (revoked, retry, gave_up, skipped)',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly connects = new Counter({
    name: 'token_vault_connects_total',
    help: 'Connect flows by provider, flow (authorization_code, oauth1, device) and outcome (started, connected, denied, failed, expired)',
    labelNames: ['provider', 'flow', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly inboundWebhooks = new Counter({
    name: 'token_vault_inbound_webhooks_total',
    help: 'Provider webhooks received by provider and outcome (revoked, ignored, duplicate, rejected, invalid)',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly webhookDeliveries = new Counter({
    name: 'token_vault_webhook_deliveries_total',
    help: 'Outbound webhook attempts by subscriber and outcome (delivered, retry, failed: dead letter)',
    labelNames: ['subscriber', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly webhookDuration = new Histogram({
    name: 'token_vault_webhook_delivery_duration_seconds',
    help: 'Outbound webhook attempt latency by subscriber',
    labelNames: ['subscriber'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'token_vault_' });
    // A labelled counter appears only with its first increment, which increase() cannot see:
    // the series an alert watches start at 0.
    for (const reason of ['tampered', 'unknown_kek', 'format']) this.decryptFailures.inc({ reason }, 0);
  }

  /** Starts the per-provider series alerts watch at 0 (see the constructor). */
  initProviders(providers: readonly string[]): void {
    for (const provider of providers) {
      this.revocations.inc({ provider, outcome: 'gave_up' }, 0);
      for (const outcome of ['ok', 'invalid_grant', 'invalid_client', 'transient', 'error']) this.refreshes.inc({ provider, trigger: 'scheduled', outcome }, 0);
    }
  }

  /** Gauges read from Redis at scrape time: webhook deliveries waiting and dead letters, revocations waiting. */
  observeWebhooks(source: WebhookGauges): void {
    const registers = [this.registry];
    new Gauge({
      name: 'token_vault_webhook_deliveries',
      help: 'Outbound webhook deliveries by status: pending (waiting for an attempt) or failed (dead letters)',
      labelNames: ['status'] as const,
      registers,
      async collect() {
        const counts = await unlessRedisDown(this, () => source.deliveryCounts(), true);
        if (counts === undefined) return;
        this.set({ status: 'pending' }, counts.pending);
        this.set({ status: 'failed' }, counts.failed);
      },
    });
    new Gauge({
      name: 'token_vault_revocations_pending',
      help: 'Deleted credentials whose upstream revocation has not succeeded yet',
      registers,
      async collect() {
        const backlog = await unlessRedisDown(this, () => source.revocationBacklog());
        if (backlog !== undefined) this.set(backlog);
      },
    });
  }

  /** Gauges read from Redis at scrape time: the refresh backlog and credentials by state. */
  observeStore(source: StoreGauges): void {
    const registers = [this.registry];
    new Gauge({
      name: 'token_vault_redis_up',
      help: 'Whether Redis (every master of a cluster) answered a PING at scrape time: 1 or 0',
      registers,
      async collect() {
        this.set((await unlessRedisDown(this, () => source.ping().then(() => 1))) ?? 0);
      },
    });
    // Both backlog gauges come from one walk over the shards per scrape.
    let backlog: { at: number; value: ReturnType<StoreGauges['dueBacklog']> } | undefined;
    const dueBacklog = () => {
      if (!backlog || Date.now() - backlog.at > 1000) backlog = { at: Date.now(), value: source.dueBacklog() };
      return backlog.value;
    };
    new Gauge({
      name: 'token_vault_refresh_due_backlog',
      help: 'Scheduled refreshes that are due now and not yet taken by a worker',
      registers,
      async collect() {
        const value = await unlessRedisDown(this, dueBacklog);
        if (value !== undefined) this.set(value.overdue);
      },
    });
    new Gauge({
      name: 'token_vault_refresh_oldest_due_age_seconds',
      help: 'How long the oldest due refresh has been waiting (0 when none is due)',
      registers,
      async collect() {
        const value = await unlessRedisDown(this, dueBacklog);
        if (value !== undefined) this.set(value.oldestDueAt === null ? 0 : (value.now - value.oldestDueAt) / 1000);
      },
    });
    new Gauge({
      name: 'token_vault_credentials',
      help: 'Stored credentials by state',
      labelNames: ['state'] as const,
      registers,
      async collect() {
        const counts = await unlessRedisDown(this, () => source.stateCounts(), true);
        if (counts === undefined) return;
        for (const state of ['active', 'reauth_required']) this.set({ state }, counts[state] ?? 0);
      },
    });
  }
}

/**
 * A gauge read from Redis when Redis does not answer: the gauge reports nothing (no series, or
 * NaN for one without labels) instead of failing the whole scrape, so /metrics still serves the
 * counters, and token_vault_redis_up says why the gauges are missing.
 */
async function unlessRedisDown<T>(gauge: Gauge, read: () => Promise<T>, labelled = false): Promise<T | undefined> {
  try {
    return await read();
  } catch {
    gauge.reset();
    if (!labelled) gauge.set(Number.NaN);
    return undefined;
  }
}


export interface StoreGauges {
  /** Resolves when Redis (every master) answers. */
  ping(): Promise<void>;
  dueBacklog(): Promise<{ overdue: number; oldestDueAt: number | null; now: number }>;
  stateCounts(): Promise<Record<string, number>>;
}

export interface WebhookGauges {
  deliveryCounts(): Promise<{ pending: number; failed: number }>;
  revocationBacklog(): Promise<number>;
}
