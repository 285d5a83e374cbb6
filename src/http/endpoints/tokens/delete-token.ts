import { endpoint } from '../../endpoint';
import { credentialParams, requireProvider } from '../../ids';
import { conditionalHeaders, failure, retryLater } from '../../openapi/common';
import { expectedVersion } from '../../preconditions';

/**
 * DELETE /tokens/:user/:provider — 204, or 404 when there is nothing to delete. The credential
 * is gone locally when this answers; when the provider has a revocationUrl its tokens are
 * revoked upstream (RFC 7009) in the background, retried until the provider answers.
 */
export const deleteToken = endpoint({
  method: 'delete',
  path: '/tokens/:user/:provider',
  operationId: 'deleteToken',
  summary: 'Delete a credential',
  description:
    'Gone for every caller when this answers, and `token.revoked` goes to subscribers. When the provider has a `revocationUrl`, ' +
    'its tokens are revoked there in the background (RFC 7009); the caller does not wait for the provider.',
  scope: 'tokens:write',
  params: credentialParams,
  requestHeaders: conditionalHeaders(false),
  responses: {
    204: { description: 'Deleted.' },
    404: failure('`not_found`: nothing to delete, or the provider is not configured.'),
    412: failure('`precondition_failed`: `If-Match` did not match the record\'s version.'),
    503: retryLater('`unavailable`: Redis is unreachable, or the record kept changing while it was being deleted.'),
  },
  async handle({ deps, params, caller, actor, req, res }) {
    requireProvider(deps, caller, params.provider);
    await deps.credentials.delete(actor, params.user, params.provider, expectedVersion(req, false));
    res.status(204).end();
  },
});
