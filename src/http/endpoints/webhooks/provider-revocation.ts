import express, { type RequestHandler } from 'express';
import { z } from 'zod';
import type { Deps } from '../../../deps';
import { InvalidRequestError, NotFoundError, UnauthorizedError } from '../../../errors';
import { withStoreErrors } from '../../../store/redis';
import { validate } from '../../endpoint';
import { providerId } from '../../ids';

const params = z.strictObject({ provider: providerId });

/**
 * How long a handled delivery id is remembered. Generic and Slack deliveries carry a signed
 * timestamp, so past twice the tolerance a replay is refused anyway; GitHub signs none, so its
 * delivery ids are kept for 30 days (a replay older than that is the limit we state).
 */
const GITHUB_SEEN_SECONDS = 30 * 24 * 60 * 60;

/**
 * POST /webhooks/:provider/revocation (public) — a provider says accounts revoked the app. The
 * raw body is verified first (the provider's verifier: generic Standard Webhooks HMAC, GitHub,
 * Slack); nothing unverified is parsed or acted on (401). A delivery handled before is answered
 * 200 and ignored; the credentials of the named accounts are deleted (token.revoked, reason
 * provider_webhook) without calling the provider back. 404 when the provider has no
 * inboundWebhook configured.
 */
export function providerRevocation(deps: Deps): RequestHandler[] {
  const raw = express.raw({ type: () => true, limit: deps.loaded.bodyLimitBytes });
  const handle: RequestHandler = async (req, res) => {
    const { provider } = validate('params', params, req.params);
    const verifier = deps.inbound.get(provider);
    const settings = deps.providers.get(provider)?.inboundWebhook;
    if (!verifier || !settings) throw new NotFoundError(`provider "${provider}" has no inbound revocation webhook configured`);
    const count = (outcome: string) => deps.metrics.inboundWebhooks.inc({ provider, outcome });

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
        res.json(verdict.body);
        return;
      case 'ignore':
        count('ignored');
        res.json({ status: 'ignored', event: verdict.event });
        return;
    }

    const seen = deps.keys.inboundSeen(provider, verdict.deliveryId);
    if ((await withStoreErrors(() => deps.redis.exists(seen))) === 1) {
      count('duplicate');
      res.json({ status: 'duplicate' });
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
    res.json({ status: 'revoked', deleted: users.length });
  };
  return [raw, handle];
}
