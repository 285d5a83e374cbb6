import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Caller } from '../../../auth/callers';
import type { ProviderConfig, Scope } from '../../../config/schema';
import type { Actor, Revealed } from '../../../credentials/credential-service';
import { tokenView, tokenViewSchema } from '../../../credentials/views';
import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';
import { credentialParams, requireProvider } from '../../ids';
import { sendJson } from '../../json-response';
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

export const TOKEN_READ_SCOPE: Scope = 'tokens:read';

/**
 * GET /tokens/:user/:provider once the caller is known and the input valid: the route below and
 * the hot route (http/hot-route.ts), which serves it without express, both answer through this.
 */
export async function answerTokenRead(
  deps: Deps,
  caller: Caller,
  actor: Actor,
  params: z.output<typeof credentialParams>,
  query: z.output<typeof getTokenQuery>,
  res: ServerResponse,
): Promise<void> {
  const provider = requireProvider(deps, caller, params.provider);
  sendToken(res, provider, await deps.credentials.reveal(actor, params.user, params.provider, query.min_ttl), deps.clock.now());
}

/** A token read's 200: the token view, its version as the ETag, and a Warning when it is served stale. */
export function sendToken(res: ServerResponse, provider: ProviderConfig, { meta, credential, stale }: Revealed, now: number): void {
  if (stale) res.setHeader('Warning', '110 - "stale"');
  res.setHeader('ETag', etag(meta.version));
  sendJson(res, 200, tokenView(meta, credential, provider, now));
}

export const getToken = endpoint({
  method: 'get',
  path: '/tokens/:user/:provider',
  operationId: 'getToken',
  summary: 'Get a usable token',
  description:
    'The token, refreshed first when it expires within min(`min_ttl`, half its lifetime), once for all concurrent callers on all replicas. ' +
    'A token served after a transient refresh failure carries `Warning: 110 - "stale"`.',
  scope: TOKEN_READ_SCOPE,
  params: credentialParams,
  query: getTokenQuery,
  responses: {
    ...tokenResponses,
    404: failure('`not_found`: no credential, or the provider is not configured.'),
  },
  handle: ({ deps, params, query, caller, actor, res }) => answerTokenRead(deps, caller, actor, params, query, res),
});
