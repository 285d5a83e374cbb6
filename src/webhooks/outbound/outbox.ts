import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '../../events/event-bus';

/**
 * An outbox entry: one event as the step that caused it wrote it to Redis (a Lua script for
 * credential events, a MULTI for key and job events). Times are ms since the epoch; the webhook
 * body turns them into ISO 8601 strings. Entries never carry a token.
 *
 *   {"id":"msg_…","type":"token.revoked","at":1764000000000,"data":{"user":"u42","provider":"github",…}}
 */
export interface OutboxEntry {
  id: string;
  type: WebhookEventType;
  at: number;
  data: Record<string, unknown>;
}

/** Fields of `data` written as ms that subscribers receive as ISO 8601 strings. */
const TIME_FIELDS = ['failing_since'];

export function encodeOutboxEntry(entry: OutboxEntry): string {
  return JSON.stringify(entry);
}

/** Parses an entry read from an outbox; null for anything that is not one (logged by the caller). */
export function decodeOutboxEntry(text: string): OutboxEntry | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { id, type, at, data } = value as Record<string, unknown>;
  if (typeof id !== 'string' || typeof at !== 'number' || typeof data !== 'object' || data === null || Array.isArray(data)) return null;
  if (!(WEBHOOK_EVENT_TYPES as readonly unknown[]).includes(type)) return null;
  return { id, type: type as WebhookEventType, at, data: data as Record<string, unknown> };
}

/** The body every subscriber receives for an entry (DESIGN §8): `{ type, timestamp, data }`. */
export function webhookBody(entry: OutboxEntry): string {
  const data: Record<string, unknown> = { ...entry.data };
  for (const field of TIME_FIELDS) {
    if (typeof data[field] === 'number') data[field] = new Date(data[field]).toISOString();
  }
  return JSON.stringify({ type: entry.type, timestamp: new Date(entry.at).toISOString(), data });
}
