import { z } from 'zod';
import { tokenView, tokenViewSchema } from '../../../credentials/views';
import { endpoint } from '../../endpoint';
import { credentialParams, requireProvider } from '../../ids';
import { failure, headers, json, retryLater } from '../../openapi/common';
import { etag } from '../../preconditions';

export const getTokenQuery = z.strictObject({
  min_ttl: z
    .string()
    .regex(/^\d{1,9}$/, 'min_ttl is a whole number of seconds')
    .transform(Number)
    .optional()
    .meta({ description: 'Refresh first when the token expires within min(min_ttl, half its lifetime) seconds. Default 30.' }),
});

/** The answers of a token read, shared with the app token (GET /tokens/_app/:provider). */
export const tokenResponses = {
  200: json('The token, refreshed first when needed.', tokenViewSchema, z.object({ ETag: headers.etag, Warning: headers.stale.optional() })),
  409: failure('`reauth_required`: the provider rejected the refresh token, or the token expired without one; the user must connect again.'),
  500: failure('`credential_unreadable`: the stored record failed to open (tampered, or sealed under a key this replica lacks); or `internal`.'),
  502: failure('`provider_error`: the provider refused the vault\'s client or answered something unusable, and no valid token is left.'),
  503: retryLater('`provider_unavailable`: the provider is down, slow or rate-limiting and no valid token is left; or `unavailable`: Redis is unreachable.'),
};

export const getToken = endpoint({
  method: 'get',
  path: '/tokens/:user/:provider',
  operationId: 'getToken',
  summary: 'Get a usable token',
  description:
    'The token, refreshed first when it expires within min(`min_ttl`, half its lifetime), once for all concurrent callers on all replicas. ' +
    'A token served after a transient refresh failure carries `Warning: 110 - "stale"`.',
  scope: 'tokens:read',
  params: credentialParams,
  query: getTokenQuery,
  responses: {
    ...tokenResponses,
    404: failure('`not_found`: no credential, or the provider is not configured.'),
  },
  async handle({ deps, params, query, caller, actor, res }) {
    const provider = requireProvider(deps, caller, params.provider);
    const { meta, credential, stale } = await deps.credentials.reveal(actor, params.user, params.provider, query.min_ttl);
    if (stale) res.set('Warning', '110 - "stale"');
    res.set('ETag', etag(meta.version)).json(tokenView(meta, credential, provider, deps.clock.now()));
  },
});
