import { mayUseProvider } from '../../../auth/callers';
import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';
import { userParams } from '../../ids';

/** DELETE /tokens/:user — deletes the user's credentials for every provider the caller may use. */
export function deleteUserTokens(deps: Deps) {
  return endpoint(deps, {
    scope: 'tokens:write',
    params: userParams,
    async handle({ params, caller, actor, res }) {
      const deleted = await deps.credentials.deleteAll(actor, params.user, (provider) => mayUseProvider(caller, provider));
      res.json({ user: params.user, deleted });
    },
  });
}
