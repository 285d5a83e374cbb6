import { z } from 'zod';
import { InvalidRequestError, NotFoundError, UnauthorizedError } from '../../../errors';
import { withStoreErrors } from '../../../store/redis';
import { publicEndpoint } from '../../endpoint';
import { providerId } from '../../ids';
import { failure, headers, json, retryLater } from '../../openapi/common';

const params = z.strictObject({ provider: providerId });

/**
 * How long a handled delivery id is remembered. Generic and Slack deliveries carry a signed
 * timestamp, so past twice the tolerance a replay is refused anyway; GitHub signs none, so its
 * delivery ids are kept for 30 days (a replay older than that is the limit we state).
 */
const GITHUB_SEEN_SECONDS = 30 * 24 * 60 * 60;

const handled = z
  .union([
    z.strictObject({ status: z.literal('revoked'), deleted: z.number().int().meta({ description: 'Credentials deleted.' }) }),
    z.strictObject({ status: z.literal('duplicate') }).meta({ description: 'This delivery was handled before (a replay, or a provider retry).' }),
    z.strictObject({ status: z.literal('ignored'), event: z.string() }).meta({ description: 'A verified event that is not a revocation.' }),
    z.strictObject({ challenge: z.string() }).meta({ description: "Slack's `url_verification` handshake." }),
  ])
  .meta({ id: 'RevocationWebhookHandled' });
type Handled = z.infer<typeof handled>;

/**
 * POST /webhooks/:provider/revocation (public) — a provider says accounts revoked the app. The
 * raw body is verified first (the provider's verifier: generic Standard Webhooks HMAC, GitHub,
 * Slack); nothing unverified is parsed or acted on (401). A delivery handled before is answered
 * 200 and ignored; the credentials of the named accounts are deleted (token.revoked, reason
 * provider_webhook) without calling the provider back. 404 when the provider has no
 * inboundWebhook configured.
 */
export const providerRevocation = publicEndpoint({
  method: 'post',
  path: '/webhooks/:provider/revocation',
  publicPort: true,
  operationId: 'providerRevocation',
  summary: 'A provider says accounts revoked the app',
  description:
    "Verified on the raw body with the provider's `inboundWebhook` settings before anything is parsed: Standard Webhooks HMAC-SHA256 with a signed timestamp " +
    '(`webhook-id`, `webhook-timestamp`, `webhook-signature`), GitHub `X-Hub-Signature-256` (deduplicated by `X-GitHub-Delivery`), or Slack v0 signatures. ' +
    'The credentials carrying the named `account_id`s are deleted (`token.revoked`, reason `provider_webhook`), without calling the provider back.',
  params,
  rawBody: { contentType: 'application/json', schema: z.looseObject({}), description: "The provider's event, as it signed it." },
  responses: {
    200: json('Verified and handled.', handled),
    400: failure('`invalid_request`: verified but not understood.'),
    401: failure('`unauthorized`: the request could not be verified (forged, tampered, stale or future timestamp, missing headers); nothing changed.', z.object({ 'WWW-Authenticate': headers.wwwAuthenticate })),
    404: failure('`not_found`: the provider has no `inboundWebhook`.'),
    503: retryLater('`unavailable`: Redis is unreachable; the provider retries.'),
  },
  async handle({ deps, params: { provider }, req, res }) {
    const verifier = deps.inbound.get(provider);
    const settings = deps.providers.get(provider)?.inboundWebhook;
    if (!verifier || !settings) throw new NotFoundError(`provider "${provider}" has no inbound revocation webhook configured`);
    const count = (outcome: string) => deps.metrics.inboundWebhooks.inc({ provider, outcome });
    const answer = (body: Handled) => res.json(body);

    const verdict = verifier.verify({
      header: (name) => req.get(name),
      rawBody: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
      now: deps.clock.now(),
    });
    switch (verdict.kind) {
      case 'reject':
        count('rejected');
        deps.logger.warn({ provider, reason: verdict.reason }, 'inbound webhook rejected');
        throw new UnauthorizedError(`the webhook could not be verified: ${verdict.reason}`);
      case 'invalid':
        count('invalid');
        throw new InvalidRequestError(`the webhook was verified but not understood: ${verdict.reason}`);
      case 'answer':
        count('handshake');
        answer(handled.parse(verdict.body));
        return;
      case 'ignore':
        count('ignored');
        answer({ status: 'ignored', event: verdict.event });
        return;
    }

    const seen = deps.keys.inboundSeen(provider, verdict.deliveryId);
    if ((await withStoreErrors(() => deps.redis.exists(seen))) === 1) {
      count('duplicate');
      answer({ status: 'duplicate' });
      return;
    }
    const actor = { caller: `webhook:${provider}`, requestId: String(req.id) };
    const users = await deps.credentials.revokeAccounts(actor, provider, verdict.accountIds);
    // Remembered only once handled: a delivery that failed half-way is handled again when the
    // provider retries it (deleting is idempotent).
    const ttl = settings.verifier === 'github' ? GITHUB_SEEN_SECONDS : 2 * settings.toleranceSeconds;
    await withStoreErrors(() => deps.redis.set(seen, '1', 'EX', ttl));
    count('revoked');
    deps.audit.record({ action: 'webhook.revocation', caller: actor.caller, provider, outcome: 'ok', event: verdict.event, delivery: verdict.deliveryId, deleted: users.length, request_id: actor.requestId });
    answer({ status: 'revoked', deleted: users.length });
  },
});
