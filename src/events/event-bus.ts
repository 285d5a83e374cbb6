import type { Logger } from 'pino';

/**
 * Domain events: what happened to a credential, never a token. Outbound webhooks will subscribe
 * to this interface; until then the in-process bus only fans events out to local listeners.
 */
export type DomainEvent =
  | { type: 'token.refreshed'; user: string; provider: string; version: number; expires_at: string | null }
  | { type: 'token.refresh_failed'; user: string; provider: string; reason: string; failing_since: string; attempts: number }
  | { type: 'token.refresh_recovered'; user: string; provider: string; failing_since: string; attempts: number }
  | { type: 'token.reauth_required'; user: string; provider: string; reason: string }
  | { type: 'key.rotated'; from: string | null; to: string }
  | { type: 'rewrap.completed'; job: string; target: string; rewrapped: number; failed: number };

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
