import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';

/**
 * Domain events: what happened to a credential, never a token. Those that subscribers receive
 * as webhooks are written to a durable outbox in Redis by the same step as the change
 * (webhooks/outbound/outbox.ts); the in-process bus tells local listeners (logs, tests, the
 * outbox relay, which it wakes) after the change is stored. `id` is the event's webhook-id.
 */
export type DomainEvent =
  | { type: 'token.refreshed'; user: string; provider: string; version: number; expires_at: string | null }
  | { type: 'token.revoked'; id: string; user: string; provider: string; reason: 'deleted' | 'provider_webhook'; by: string; version: number }
  | { type: 'token.refresh_failed'; id: string; user: string; provider: string; reason: string; failing_since: string; attempts: number }
  | { type: 'token.refresh_recovered'; id: string; user: string; provider: string; failing_since: string; attempts: number }
  | { type: 'token.reauth_required'; id: string; user: string; provider: string; reason: string }
  | { type: 'key.rotated'; id: string; from: string | null; to: string }
  | { type: 'rewrap.completed'; id: string; job: string; target: string; rewrapped: number; failed: number };

/** The event types subscribers can receive (DESIGN §8); token.refreshed stays in-process. */
export const WEBHOOK_EVENT_TYPES = [
  'token.revoked',
  'token.reauth_required',
  'token.refresh_failed',
  'token.refresh_recovered',
  'key.rotated',
  'rewrap.completed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** A new event id: "msg_" and 128 random bits, as Standard Webhooks suggests. */
export function newEventId(): string {
  return `msg_${randomBytes(16).toString('base64url')}`;
}

export type EventListener = (event: DomainEvent) => void;

export interface EventBus {
  emit(event: DomainEvent): void;
  /** Returns a function that removes the listener. */
  subscribe(listener: EventListener): () => void;
}

export class InProcessEventBus implements EventBus {
  private readonly listeners = new Set<EventListener>();

  constructor(private readonly logger: Logger) {}

  emit(event: DomainEvent): void {
    this.logger.info({ event: event.type, ...('user' in event ? { user: event.user, provider: event.provider } : {}) }, 'event');
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger.error({ event: event.type, err }, 'event listener failed');
      }
    }
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
