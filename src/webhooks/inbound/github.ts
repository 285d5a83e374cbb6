import { z } from 'zod';
import { DELIVERY_ID, hexHmacMatches, parseBody, revocation, utf8Keys } from './shared';
import type { InboundRequest, InboundVerifier, Verification } from './verifier';

/**
 * GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`. GitHub signs no
 * timestamp, so a captured request verifies forever; replays are stopped by the endpoint
 * deduplicating `X-GitHub-Delivery`, which is why a verified request without one is refused.
 * A user revoking the app's authorization arrives as `github_app_authorization` / `revoked`.
 */
const SIGNATURE_PREFIX = 'sha256=';
const EVENT_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const REVOCATION_EVENT = 'github_app_authorization';
const REVOCATION_ACTION = 'revoked';

const anyObject = z.record(z.string(), z.unknown());
const authorizationSchema = z.object({
  action: z.literal(REVOCATION_ACTION),
  sender: z.object({
    id: z.union([z.number().int().nonnegative(), z.string().min(1)]).optional(),
    login: z.string().min(1).optional(),
  }),
});

export function createGithubVerifier(secrets: readonly string[]): InboundVerifier {
  const keys = utf8Keys(secrets);
  return {
    verify(request: InboundRequest): Verification {
      const signature = request.header('x-hub-signature-256');
      if (!signature) return { kind: 'reject', reason: 'missing signature headers' };
      if (!signature.startsWith(SIGNATURE_PREFIX)) return { kind: 'reject', reason: 'malformed signature header' };
      if (!hexHmacMatches(keys, [request.rawBody], signature.slice(SIGNATURE_PREFIX.length))) {
        return { kind: 'reject', reason: 'signature does not match' };
      }

      const deliveryId = request.header('x-github-delivery');
      if (!deliveryId || !DELIVERY_ID.test(deliveryId)) return { kind: 'invalid', reason: 'missing or malformed delivery id' };
      const event = request.header('x-github-event');
      if (!event || !EVENT_NAME.test(event)) return { kind: 'invalid', reason: 'missing or malformed event name' };
      const body = parseBody(request.rawBody, anyObject);
      if (body === undefined) return { kind: 'invalid', reason: 'body is not a JSON object' };

      const action = typeof body.action === 'string' ? body.action : undefined;
      const label = action === undefined ? event : `${event}.${action}`;
      if (event !== REVOCATION_EVENT || action !== REVOCATION_ACTION) return { kind: 'ignore', deliveryId, event: label };

      const authorization = authorizationSchema.safeParse(body);
      if (!authorization.success) return { kind: 'invalid', reason: 'revocation without a valid sender' };
      const { id, login } = authorization.data.sender;
      const accountIds = [id === undefined ? undefined : String(id), login].filter((value) => value !== undefined);
      return revocation(deliveryId, label, accountIds);
    },
  };
}
