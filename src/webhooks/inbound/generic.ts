import { z } from 'zod';
import { verifyStandardSignature, webhookSecretBytes } from '../outbound/signer';
import { MAX_ACCOUNT_IDS, accountIdSchema, parseBody, requireSecrets, revocation } from './shared';
import type { InboundRequest, InboundVerifier, Verification } from './verifier';

/**
 * The default scheme, for providers that sign the way we sign outbound webhooks: Standard
 * Webhooks headers, with the timestamp inside the signature so a captured request cannot be
 * replayed after the tolerance. Body: `{ "type"?, "account_id" }` or `{ "type"?, "account_ids" }`.
 */
const DEFAULT_EVENT = 'revocation';

const bodySchema = z
  .object({
    type: z.string().min(1).optional(),
    account_id: accountIdSchema.optional(),
    account_ids: z.array(accountIdSchema).min(1).max(MAX_ACCOUNT_IDS).optional(),
  })
  // Both at once would leave it unclear which the sender meant, so it is refused, not merged.
  .refine((body) => (body.account_id === undefined) !== (body.account_ids === undefined));

/** A `whsec_` secret is base64 key bytes (as we hand them out); any other secret is its UTF-8 text. */
function secretKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? webhookSecretBytes(secret) : Buffer.from(secret, 'utf8');
}

export function createGenericVerifier(secrets: readonly string[], toleranceSeconds: number): InboundVerifier {
  const keys = requireSecrets(secrets).map(secretKey);
  return {
    verify(request: InboundRequest): Verification {
      const checked = verifyStandardSignature(
        keys,
        {
          id: request.header('webhook-id'),
          timestamp: request.header('webhook-timestamp'),
          signature: request.header('webhook-signature'),
        },
        request.rawBody,
        request.now,
        toleranceSeconds,
      );
      if (!checked.ok) return { kind: 'reject', reason: checked.reason };

      const body = parseBody(request.rawBody, bodySchema);
      if (body === undefined) {
        return { kind: 'invalid', reason: 'body is not a JSON object with account_id or account_ids' };
      }
      const accountIds = body.account_ids ?? (body.account_id === undefined ? [] : [body.account_id]);
      return revocation(checked.id, body.type ?? DEFAULT_EVENT, accountIds);
    },
  };
}
