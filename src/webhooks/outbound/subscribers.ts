import { createHash } from 'node:crypto';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '../../events/event-bus';

/**
 * The Standard Webhooks retry schedule (DESIGN §8), in seconds before each attempt: at once,
 * 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — eight attempts over about 27.6 hours, then the
 * delivery is a dead letter.
 */
export const STANDARD_RETRY_SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 36000] as const;

/** A subscriber as the dispatcher uses it: its signing keys decoded, its filter compiled. */
export interface Subscriber {
  name: string;
  url: string;
  /** Signing keys, one signature each (several while the subscriber rotates its secret). */
  keys: Buffer[];
  accepts(type: WebhookEventType): boolean;
}

/** "*", an exact type, or "<prefix>.*" (e.g. "token.*"). */
export function eventMatches(filter: string, type: string): boolean {
  if (filter === '*') return true;
  if (filter.endsWith('.*')) return type.startsWith(filter.slice(0, -1));
  return filter === type;
}

/** Whether a filter can match any event at all (config validation: a typo must not silently receive nothing). */
export function matchesAnyEvent(filter: string): boolean {
  return WEBHOOK_EVENT_TYPES.some((type) => eventMatches(filter, type));
}

/**
 * A delivery's id, derived from the event and the subscriber: moving the same event from its
 * outbox twice creates its deliveries once.
 */
export function deliveryId(eventId: string, subscriber: string): string {
  return `dlv_${createHash('sha256').update(`${eventId}\n${subscriber}`).digest('base64url').slice(0, 22)}`;
}
