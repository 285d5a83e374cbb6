import { z } from 'zod';
import type { Deps } from '../../../deps';
import { NotFoundError } from '../../../errors';
import type { Delivery } from '../../../store/delivery-store';
import { endpoint } from '../../endpoint';

/** What operators see of a delivery: everything but nothing secret (the body never holds a token). */
function view(delivery: Delivery) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: delivery.id,
    event_id: delivery.event,
    type: delivery.type,
    subscriber: delivery.subscriber,
    status: delivery.status,
    attempts: delivery.attempts,
    created_at: iso(delivery.createdAt),
    next_attempt_at: iso(delivery.nextAt),
    last_attempt_at: iso(delivery.lastAttemptAt),
    last_status: delivery.lastStatus,
    last_error: delivery.lastError,
    delivered_at: iso(delivery.deliveredAt),
    failed_at: iso(delivery.failedAt),
    payload: JSON.parse(delivery.body) as unknown,
  };
}

/**
 * GET /admin/webhooks/deliveries?status=failed&limit=100 — dead letters (failed, newest first),
 * deliveries waiting for an attempt (pending, soonest first) or recent successes (delivered, the
 * last day, newest first).
 */
export function listDeliveries(deps: Deps) {
  return endpoint(deps, {
    scope: 'admin',
    params: z.strictObject({}),
    query: z.strictObject({
      status: z.enum(['failed', 'pending', 'delivered']).default('failed'),
      limit: z.coerce.number().int().min(1).max(1000).default(100),
    }),
    async handle({ query, res }) {
      const deliveries = await deps.deliveries.list(query.status, query.limit);
      res.json({ status: query.status, deliveries: deliveries.map(view) });
    },
  });
}

/**
 * POST /admin/webhooks/deliveries/:id/retry — sends a delivery again with a fresh retry
 * schedule, starting now; same webhook-id, so the receiver can tell it is the same event. 202.
 */
export function retryDelivery(deps: Deps) {
  return endpoint(deps, {
    scope: 'admin',
    params: z.strictObject({ id: z.string().regex(/^dlv_[A-Za-z0-9_-]{1,64}$/, 'delivery ids look like dlv_…') }),
    async handle({ params, caller, actor, res }) {
      if (!(await deps.deliveries.retry(params.id))) throw new NotFoundError(`no delivery ${params.id}`);
      deps.audit.record({ action: 'webhook.retry', caller: caller.name, outcome: 'ok', delivery: params.id, request_id: actor.requestId });
      deps.dispatcher.kick();
      const delivery = await deps.deliveries.get(params.id);
      res.status(202).json({ delivery: delivery ? view(delivery) : null });
    },
  });
}
