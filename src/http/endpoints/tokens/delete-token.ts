import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';
import { credentialParams, requireProvider } from '../../ids';
import { expectedVersion } from '../../preconditions';

/**
 * DELETE /tokens/:user/:provider — 204, or 404 when there is nothing to delete. The credential
 * is gone locally when this answers; when the provider has a revocationUrl its tokens are
 * revoked upstream (RFC 7009) in the background, retried until the provider answers.
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
