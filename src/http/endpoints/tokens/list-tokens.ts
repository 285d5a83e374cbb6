import { mayUseProvider } from '../../../auth/callers';
import { publicView } from '../../../credentials/views';
import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';
import { userParams } from '../../ids';

/** GET /tokens/:user — the user's credentials the caller may see, without token values. */
export function listTokens(deps: Deps) {
  return endpoint(deps, {
    scope: 'tokens:read',
    params: userParams,
    async handle({ params, caller, res }) {
      const credentials = await deps.credentials.list(params.user, (provider) => mayUseProvider(caller, provider));
      res.json({ user: params.user, credentials: credentials.map(publicView) });
    },
  });
}
