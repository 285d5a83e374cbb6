import { Metrics, type StoreGauges, type WebhookGauges } from '../../../src/observability/metrics';

const down = () => Promise.reject(new Error('Connection is closed.'));

function observed(store: StoreGauges, webhooks: WebhookGauges): Metrics {
  const metrics = new Metrics();
  metrics.initProviders(['github']);
  metrics.observeStore(store);
  metrics.observeWebhooks(webhooks);
  return metrics;
}

const line = (text: string, series: string) => text.split('\n').find((l) => l.startsWith(`${series} `));

test('with Redis up, the Redis-backed gauges report what the store says and token_vault_redis_up is 1', async () => {
  const metrics = observed(
    { ping: async () => undefined, dueBacklog: async () => ({ overdue: 3, oldestDueAt: 1_000, now: 61_000 }), stateCounts: async () => ({ active: 5, reauth_required: 2 }) },
    { deliveryCounts: async () => ({ pending: 1, failed: 4 }), revocationBacklog: async () => 6 },
  );
  const text = await metrics.registry.metrics();
  expect(line(text, 'token_vault_redis_up')).toBe('token_vault_redis_up 1');
  expect(line(text, 'token_vault_refresh_due_backlog')).toBe('token_vault_refresh_due_backlog 3');
  expect(line(text, 'token_vault_refresh_oldest_due_age_seconds')).toBe('token_vault_refresh_oldest_due_age_seconds 60');
  expect(line(text, 'token_vault_credentials{state="reauth_required"}')).toBe('token_vault_credentials{state="reauth_required"} 2');
  expect(line(text, 'token_vault_webhook_deliveries{status="failed"}')).toBe('token_vault_webhook_deliveries{status="failed"} 4');
  expect(line(text, 'token_vault_revocations_pending')).toBe('token_vault_revocations_pending 6');
});

test('with Redis down, a scrape still answers: counters are there, token_vault_redis_up is 0, and the Redis-backed gauges say nothing rather than 0 (NaN, which Prometheus reads in any case)', async () => {
  const metrics = observed({ ping: down, dueBacklog: down, stateCounts: down }, { deliveryCounts: down, revocationBacklog: down });
  metrics.refreshes.inc({ provider: 'github', trigger: 'scheduled', outcome: 'transient' });
  const text = await metrics.registry.metrics();
  expect(line(text, 'token_vault_redis_up')).toBe('token_vault_redis_up 0');
  expect(line(text, 'token_vault_refresh_total{provider="github",trigger="scheduled",outcome="transient"}')).toMatch(/ 1$/);
  expect(line(text, 'token_vault_refresh_oldest_due_age_seconds')).toMatch(/^token_vault_refresh_oldest_due_age_seconds NaN$/i);
  expect(line(text, 'token_vault_refresh_due_backlog')).toMatch(/^token_vault_refresh_due_backlog NaN$/i);
  expect(text).not.toMatch(/^token_vault_credentials\{/m);
  expect(text).not.toMatch(/^token_vault_webhook_deliveries\{/m);
});

test('the series alerts watch exist at 0 before their first increment, so increase() sees the first one', async () => {
  const metrics = observed(
    { ping: async () => undefined, dueBacklog: async () => ({ overdue: 0, oldestDueAt: null, now: 0 }), stateCounts: async () => ({}) },
    { deliveryCounts: async () => ({ pending: 0, failed: 0 }), revocationBacklog: async () => 0 },
  );
  const text = await metrics.registry.metrics();
  for (const reason of ['tampered', 'unknown_kek', 'format']) {
    expect(line(text, `token_vault_decrypt_failures_total{reason="${reason}"}`)).toMatch(/ 0$/);
  }
  expect(line(text, 'token_vault_revocations_total{provider="github",outcome="gave_up"}')).toMatch(/ 0$/);
  expect(line(text, 'token_vault_refresh_total{provider="github",trigger="scheduled",outcome="invalid_grant"}')).toMatch(/ 0$/);
});
