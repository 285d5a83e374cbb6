import { z } from 'zod';
import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';

const params = z.strictObject({ id: z.string().regex(/^cs_[A-Za-z0-9_-]{22}$/, 'not a connect session id') });
const iso = (ms: number) => new Date(ms).toISOString();

/** GET /connect/sessions/:id — how a connect flow stands; only for the caller that started it. */
export function getConnectSession(deps: Deps) {
  return endpoint(deps, {
    scope: 'connect',
    params,
    async handle({ params, caller, res }) {
      const session = await deps.connect.session(caller.name, params.id);
      res.json({
        id: session.id,
        provider: session.provider,
        user: session.user,
        flow: session.flow,
        status: session.status,
        ...(session.error ? { error: session.error } : {}),
        expires_at: iso(session.expiresAt),
        ...(session.flow === 'device'
          ? {
              user_code: session.userCode,
              verification_uri: session.verificationUri,
              ...(session.verificationUriComplete ? { verification_uri_complete: session.verificationUriComplete } : {}),
              interval: session.interval,
            }
          : {}),
        ...(session.accountId ? { account_id: session.accountId } : {}),
        ...(session.version !== null ? { version: session.version } : {}),
      });
    },
  });
}
