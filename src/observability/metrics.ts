import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

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
    help: 'Rejected caller authentications by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'token_vault_' });
  }
}
