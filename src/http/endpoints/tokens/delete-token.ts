import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';
import { credentialParams, requireProvider } from '../../ids';
import { expectedVersion } from '../../preconditions';

/**
 * DELETE /tokens/:user/:provider — 204, or 404 when there is nothing to delete. Upstream
 * revocation (RFC 7009) is not part of this version: the credential is deleted locally only.
 */
export function deleteToken(deps: Deps) {
  return endpoint(deps, {
    scope: 'tokens:write',
    params: credentialParams,
    async handle({ params, caller, actor, req, res }) {
      requireProvider(deps, caller, params.provider);
      await deps.credentials.delete(actor, params.user, params.provider, expectedVersion(req, false));
      res.status(204).end();
    },
  });
}
