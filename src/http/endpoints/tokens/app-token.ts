import { APP_USER } from '../../../credentials/credential';
import { endpoint } from '../../endpoint';
import { providerParams, requireAppProvider } from '../../ids';
import { failure, retryLater } from '../../openapi/common';
import { getTokenQuery, sendToken, tokenResponses } from './get-token';

const notAppProvider = '`invalid_request`: bad input, or the provider is not a `client_credentials` provider.';

/**
 * GET /tokens/_app/:provider — the app token of a client-credentials provider: minted on first
 * use (once for all replicas), renewed by the scheduler like any token, and on demand under the
 * same min_ttl rule as a user's token.
 */
export const getAppToken = endpoint({
  method: 'get',
  path: '/tokens/_app/:provider',
  operationId: 'getAppToken',
  summary: 'Get the app token of a client-credentials provider',
  description: 'Minted on first use (once for all replicas), cached and renewed; shaped like a user\'s token with `"user": "_app"`, with the same `min_ttl`, `Warning` and errors.',
  scope: 'tokens:read',
  params: providerParams,
  query: getTokenQuery,
  responses: {
    ...tokenResponses,
    400: failure(notAppProvider),
    404: failure('`not_found`: the provider is not configured.'),
  },
  async handle({ deps, params, query, caller, actor, res }) {
    const provider = requireAppProvider(deps, caller, params.provider);
    sendToken(res, provider, await deps.credentials.reveal(actor, APP_USER, params.provider, query.min_ttl, provider), deps.clock.now());
  },
});

/** DELETE /tokens/_app/:provider — drops the cached app token (revoked upstream when possible); the next GET mints a new one. */
export const deleteAppToken = endpoint({
  method: 'delete',
  path: '/tokens/_app/:provider',
  operationId: 'deleteAppToken',
  summary: 'Drop the cached app token',
  description: 'Revoked upstream when the provider has a `revocationUrl`; the next GET mints a new one.',
  scope: 'tokens:write',
  params: providerParams,
  responses: {
    204: { description: 'Dropped.' },
    400: failure(notAppProvider),
    404: failure('`not_found`: no app token is cached, or the provider is not configured.'),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, caller, actor, res }) {
    requireAppProvider(deps, caller, params.provider);
    await deps.credentials.delete(actor, APP_USER, params.provider);
    res.status(204).end();
  },
});
