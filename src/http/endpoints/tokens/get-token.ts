import { z } from 'zod';
import { tokenView } from '../../../credentials/views';
import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';
import { credentialParams, requireProvider } from '../../ids';
import { etag } from '../../preconditions';

export const getTokenQuery = z.strictObject({
  min_ttl: z
    .string()
    .regex(/^\d{1,9}$/, 'min_ttl is a whole number of seconds')
    .transform(Number)
    .optional(),
});

/**
 * GET /tokens/:user/:provider — the token, refreshed first when it expires within
 * min(min_ttl, half its lifetime). A token served after a failed refresh carries
 * `Warning: 110 - "stale"`.
 */
export function getToken(deps: Deps) {
  return endpoint(deps, {
    scope: 'tokens:read',
    params: credentialParams,
    query: getTokenQuery,
    async handle({ params, query, caller, actor, res }) {
      const provider = requireProvider(deps, caller, params.provider);
      const { meta, credential, stale } = await deps.credentials.reveal(actor, params.user, params.provider, query.min_ttl);
      if (stale) res.set('Warning', '110 - "stale"');
      res.set('ETag', etag(meta.version)).json(tokenView(meta, credential, provider, deps.clock.now()));
    },
  });
}
