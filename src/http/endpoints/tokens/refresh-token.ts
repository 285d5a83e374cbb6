import { publicView } from '../../../credentials/views';
import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';
import { credentialParams, requireProvider } from '../../ids';
import { etag } from '../../preconditions';

/** POST /tokens/:user/:provider/refresh — refresh now, whatever the expiry; 200 with the public view. */
export function refreshToken(deps: Deps) {
  return endpoint(deps, {
    scope: 'tokens:write',
    params: credentialParams,
    async handle({ params, caller, actor, res }) {
      requireProvider(deps, caller, params.provider);
      const meta = await deps.credentials.refresh(actor, params.user, params.provider);
      res.set('ETag', etag(meta.version)).json(publicView(meta));
    },
  });
}
