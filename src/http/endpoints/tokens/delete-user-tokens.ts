import { z } from 'zod';
import { mayUseProvider } from '../../../auth/callers';
import { endpoint } from '../../endpoint';
import { userParams } from '../../ids';
import { json, retryLater } from '../../openapi/common';

const deletedAnswer = z.strictObject({ user: z.string(), deleted: z.array(z.string()).meta({ description: 'The providers whose credential was deleted.' }) });

/** DELETE /tokens/:user — deletes the user's credentials for every provider the caller may use. */
export const deleteUserTokens = endpoint({
  method: 'delete',
  path: '/tokens/:user',
  operationId: 'deleteUserTokens',
  summary: "Delete all of a user's credentials",
  description: 'For every provider the caller may use, each as DELETE /tokens/{user}/{provider}.',
  scope: 'tokens:write',
  params: userParams,
  responses: {
    200: json('Deleted.', deletedAnswer),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, caller, actor, res }) {
    const deleted = await deps.credentials.deleteAll(actor, params.user, (provider) => mayUseProvider(caller, provider));
    res.json({ user: params.user, deleted } satisfies z.infer<typeof deletedAnswer>);
  },
});
