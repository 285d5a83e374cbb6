import { z } from 'zod';
import { publicView, publicViewSchema } from '../../../credentials/views';
import { endpoint } from '../../endpoint';
import { credentialParams, requireProvider } from '../../ids';
import { failure, headers, json } from '../../openapi/common';
import { etag } from '../../preconditions';
import { tokenResponses } from './get-token';

/** POST /tokens/:user/:provider/refresh — refresh now, whatever the expiry; 200 with the public view. */
export const refreshToken = endpoint({
  method: 'post',
  path: '/tokens/:user/:provider/refresh',
  operationId: 'refreshToken',
  summary: 'Refresh a token now',
  description: 'Whatever its expiry. Failures answer as for GET /tokens/{user}/{provider}.',
  scope: 'tokens:write',
  params: credentialParams,
  responses: {
    ...tokenResponses,
    200: json('Refreshed: the public view with its new version.', publicViewSchema, z.object({ ETag: headers.etag })),
    400: failure('`invalid_request`: bad input, or an OAuth 1.0a credential (they do not expire).'),
    404: failure('`not_found`: no credential, or the provider is not configured.'),
  },
  async handle({ deps, params, caller, actor, res }) {
    requireProvider(deps, caller, params.provider);
    const meta = await deps.credentials.refresh(actor, params.user, params.provider);
    res.set('ETag', etag(meta.version)).json(publicView(meta));
  },
});
