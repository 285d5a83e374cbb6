import { APP_USER } from '../../../credentials/credential';
import { tokenView } from '../../../credentials/views';
import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';
import { providerParams, requireAppProvider } from '../../ids';
import { etag } from '../../preconditions';
import { getTokenQuery } from './get-token';

/**
 * GET /tokens/_app/:provider — the app token of a client-credentials provider: minted on first
 * use (once for all replicas), renewed by the scheduler like any token, and on demand under the
 * same min_ttl rule as a user's token.
 */
export function getAppToken(deps: Deps) {
  return endpoint(deps, {
    scope: 'tokens:read',
    params: providerParams,
    query: getTokenQuery,
    async handle({ params, query, caller, actor, res }) {
      const provider = requireAppProvider(deps, caller, params.provider);
      const { meta, credential, stale } = await deps.credentials.reveal(actor, APP_USER, params.provider, query.min_ttl, provider);
      if (stale) res.set('Warning', '110 - "stale"');
      res.set('ETag', etag(meta.version)).json(tokenView(meta, credential, provider, deps.clock.now()));
    },
  });
}

/** DELETE /tokens/_app/:provider — drops the cached app token (revoked upstream when possible); the next GET mints a new one. */
export function deleteAppToken(deps: Deps) {
  return endpoint(deps, {
    scope: 'tokens:write',
    params: providerParams,
    async handle({ params, caller, actor, res }) {
      requireAppProvider(deps, caller, params.provider);
      await deps.credentials.delete(actor, APP_USER, params.provider);
      res.status(204).end();
    },
  });
}
