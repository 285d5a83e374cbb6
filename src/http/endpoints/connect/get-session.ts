import { z } from 'zod';
import { endpoint } from '../../endpoint';
import { failure, json, retryLater, timestamp } from '../../openapi/common';

export const SESSION_ID = /^cs_[A-Za-z0-9_-]{22}$/;

const params = z.strictObject({ id: z.string().regex(SESSION_ID, 'not a connect session id') });

const sessionView = z
  .strictObject({
    id: z.string(),
    provider: z.string(),
    user: z.string(),
    flow: z.enum(['authorization_code', 'oauth1', 'device']),
    status: z.enum(['pending', 'started', 'connected', 'error', 'expired']),
    error: z.string().optional().meta({ description: 'An OAuth error code or one of the vault\'s (`provider_error`, `provider_unavailable`, ...).' }),
    expires_at: timestamp,
    user_code: z.string().nullable().optional().meta({ description: 'Device flow only, as are `verification_uri`, `verification_uri_complete` and `interval`.' }),
    verification_uri: z.string().nullable().optional(),
    verification_uri_complete: z.string().optional(),
    interval: z.number().int().nullable().optional(),
    account_id: z.string().optional(),
    version: z.number().int().optional().meta({ description: 'The stored credential\'s version, once connected.' }),
  })
  .meta({ id: 'ConnectSession' });

const iso = (ms: number) => new Date(ms).toISOString();

/** GET /connect/sessions/:id — how a connect flow stands; only for the caller that started it. */
export const getConnectSession = endpoint({
  method: 'get',
  path: '/connect/sessions/:id',
  operationId: 'getConnectSession',
  summary: 'How a connect flow stands',
  description: 'Only for the caller that started it. A finished session stays readable for 10 minutes.',
  scope: 'connect',
  params,
  responses: {
    200: json('The session.', sessionView),
    404: failure('`not_found`: no such session, or another caller started it.'),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, caller, res }) {
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
    } satisfies z.infer<typeof sessionView>);
  },
});
