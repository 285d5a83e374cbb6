import { z } from 'zod';
import { NotFoundError } from '../../../errors';
import type { Delivery } from '../../../store/delivery-store';
import { endpoint } from '../../endpoint';
import { failure, json, retryLater, timestamp } from '../../openapi/common';

const deliveryStatus = z.enum(['failed', 'pending', 'delivered']);

const deliveryView = z
  .strictObject({
    id: z.string(),
    event_id: z.string().meta({ description: 'The event\'s `webhook-id`, the same on every attempt.' }),
    type: z.string(),
    subscriber: z.string(),
    status: deliveryStatus,
    attempts: z.number().int(),
    created_at: timestamp,
    next_attempt_at: timestamp.nullable(),
    last_attempt_at: timestamp.nullable(),
    last_status: z.number().int().nullable().meta({ description: "The subscriber's last HTTP status." }),
    last_error: z.string().nullable(),
    delivered_at: timestamp.nullable(),
    failed_at: timestamp.nullable(),
    payload: z.unknown().meta({ description: 'The event as sent; it never holds a token.' }),
  })
  .meta({ id: 'WebhookDelivery' });
type DeliveryView = z.infer<typeof deliveryView>;

/** What operators see of a delivery: everything but nothing secret (the body never holds a token). */
function view(delivery: Delivery): DeliveryView {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: delivery.id,
    event_id: delivery.event,
    type: delivery.type,
    subscriber: delivery.subscriber,
    status: delivery.status,
    attempts: delivery.attempts,
    created_at: new Date(delivery.createdAt).toISOString(),
    next_attempt_at: iso(delivery.nextAt),
    last_attempt_at: iso(delivery.lastAttemptAt),
    last_status: delivery.lastStatus,
    last_error: delivery.lastError,
    delivered_at: iso(delivery.deliveredAt),
    failed_at: iso(delivery.failedAt),
    payload: JSON.parse(delivery.body) as unknown,
  };
}

const listAnswer = z.strictObject({ status: deliveryStatus, deliveries: z.array(deliveryView) });
const retryAnswer = z.strictObject({ delivery: deliveryView.nullable() });

/**
 * GET /admin/webhooks/deliveries?status=failed&limit=100 — dead letters (failed, newest first),
 * deliveries waiting for an attempt (pending, soonest first) or recent successes (delivered, the
 * last day, newest first).
 */
export const listDeliveries = endpoint({
  method: 'get',
  path: '/admin/webhooks/deliveries',
  operationId: 'listDeliveries',
  summary: 'Outbound webhook deliveries',
  description: '`failed`: dead letters, newest first (the default); `pending`: waiting for an attempt, soonest first; `delivered`: the last day, newest first.',
  scope: 'admin',
  query: z.strictObject({
    status: deliveryStatus.default('failed'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  }),
  responses: {
    200: json('The deliveries.', listAnswer),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, query, res }) {
    const deliveries = await deps.deliveries.list(query.status, query.limit);
    res.json({ status: query.status, deliveries: deliveries.map(view) } satisfies z.infer<typeof listAnswer>);
  },
});

/**
 * POST /admin/webhooks/deliveries/:id/retry — sends a delivery again with a fresh retry
 * schedule, starting now; same webhook-id, so the receiver can tell it is the same event. 202.
 */
export const retryDelivery = endpoint({
  method: 'post',
  path: '/admin/webhooks/deliveries/:id/retry',
  operationId: 'retryDelivery',
  summary: 'Send a delivery again now',
  description: 'With a fresh retry schedule and the same `webhook-id`, so the receiver can tell it is the same event.',
  scope: 'admin',
  params: z.strictObject({ id: z.string().regex(/^dlv_[A-Za-z0-9_-]{1,64}$/, 'delivery ids look like dlv_…') }),
  responses: {
    202: json('Queued: the delivery as it stands now.', retryAnswer),
    404: failure('`not_found`: no such delivery.'),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, caller, actor, res }) {
    if (!(await deps.deliveries.retry(params.id))) throw new NotFoundError(`no delivery ${params.id}`);
    deps.audit.record({ action: 'webhook.retry', caller: caller.name, outcome: 'ok', delivery: params.id, request_id: actor.requestId });
    deps.dispatcher.kick();
    const delivery = await deps.deliveries.get(params.id);
    res.status(202).json({ delivery: delivery ? view(delivery) : null } satisfies z.infer<typeof retryAnswer>);
  },
});
