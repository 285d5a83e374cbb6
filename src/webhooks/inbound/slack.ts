import { z } from 'zod';
import { DELIVERY_ID, accountIdSchema, hexHmacMatches, parseBody, revocation, utf8Keys } from './shared';
import type { InboundRequest, InboundVerifier, Verification } from './verifier';

/**
 * Slack v0 request signing: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">`
 * under the app's signing secret, with `X-Slack-Request-Timestamp` inside the tolerance so a
 * captured request cannot be replayed later. Slack retries a delivery (`X-Slack-Retry-Num`) with
 * the same `event_id`, which the endpoint deduplicates, so a retry changes nothing.
 */
const SIGNATURE_PREFIX = 'v0=';
/** Digits only; 15 of them stay far inside Number.MAX_SAFE_INTEGER. */
const TIMESTAMP = /^[0-9]{1,15}$/;

const anyObject = z.record(z.string(), z.unknown());
const envelopeSchema = z.object({ type: z.string().min(1) });
const urlVerificationSchema = z.object({ challenge: z.string() });
const eventCallbackSchema = z.object({
  event_id: z.string().regex(DELIVERY_ID),
  team_id: accountIdSchema.optional(),
  event: z.object({ type: z.string().min(1) }),
});
const tokensRevokedSchema = z.object({
  tokens: z.object({
    oauth: z.array(z.string()).optional(),
    bot: z.array(z.string()).optional(),
  }),
});

export function createSlackVerifier(secrets: readonly string[], toleranceSeconds: number): InboundVerifier {
  const keys = utf8Keys(secrets);
  return {
    verify(request: InboundRequest): Verification {
      const timestamp = request.header('x-slack-request-timestamp');
      const signature = request.header('x-slack-signature');
      if (!timestamp || !signature) return { kind: 'reject', reason: 'missing signature headers' };
      if (!TIMESTAMP.test(timestamp)) return { kind: 'reject', reason: 'invalid timestamp' };
      if (Math.abs(Math.floor(request.now / 1000) - Number(timestamp)) > toleranceSeconds) {
        return { kind: 'reject', reason: 'timestamp outside the tolerance' };
      }
      if (!signature.startsWith(SIGNATURE_PREFIX)) return { kind: 'reject', reason: 'malformed signature header' };
      const signed = [Buffer.from(`v0:${timestamp}:`, 'utf8'), request.rawBody];
      if (!hexHmacMatches(keys, signed, signature.slice(SIGNATURE_PREFIX.length))) {
        return { kind: 'reject', reason: 'signature does not match' };
      }

      const body = parseBody(request.rawBody, anyObject);
      if (body === undefined) return { kind: 'invalid', reason: 'body is not a JSON object' };
      const envelope = envelopeSchema.safeParse(body);
      if (!envelope.success) return { kind: 'invalid', reason: 'body has no type' };

      switch (envelope.data.type) {
        case 'url_verification': {
          const handshake = urlVerificationSchema.safeParse(body);
          if (!handshake.success) return { kind: 'invalid', reason: 'url_verification without a challenge' };
          return { kind: 'answer', body: { challenge: handshake.data.challenge } };
        }
        case 'event_callback':
          return eventCallback(body);
        default:
          // app_rate_limited and any later envelope type: nothing to revoke.
          return { kind: 'ignore', deliveryId: null, event: envelope.data.type };
      }
    },
  };
}

function eventCallback(body: Record<string, unknown>): Verification {
  const callback = eventCallbackSchema.safeParse(body);
  if (!callback.success) return { kind: 'invalid', reason: 'event_callback without a valid event_id or event' };
  const { event_id: deliveryId, team_id: teamId, event } = callback.data;

  switch (event.type) {
    case 'tokens_revoked': {
      const revoked = tokensRevokedSchema.safeParse(body.event);
      if (!revoked.success) return { kind: 'invalid', reason: 'tokens_revoked without a valid tokens list' };
      if (teamId === undefined) return { kind: 'invalid', reason: 'tokens_revoked without a team_id' };
      const { oauth = [], bot = [] } = revoked.data.tokens;
      // Users are stored under "<team>:<user>" or just "<user>" depending on the preset, so both go.
      const accountIds = [...oauth, ...bot].flatMap((id) => [`${teamId}:${id}`, id]);
      return revocation(deliveryId, event.type, accountIds);
    }
    case 'app_uninstalled':
      if (teamId === undefined) return { kind: 'invalid', reason: 'app_uninstalled without a team_id' };
      return revocation(deliveryId, event.type, [teamId]);
    default:
      return { kind: 'ignore', deliveryId, event: event.type };
  }
}
