import { z } from 'zod';
import { mayUseProvider } from '../../../auth/callers';
import { publicView, publicViewSchema } from '../../../credentials/views';
import { endpoint } from '../../endpoint';
import { userParams } from '../../ids';
import { json, retryLater } from '../../openapi/common';

const listAnswer = z.strictObject({ user: z.string(), credentials: z.array(publicViewSchema) });

/** GET /tokens/:user — the user's credentials the caller may see, without token values. */
export const listTokens = endpoint({
  method: 'get',
  path: '/tokens/:user',
  operationId: 'listTokens',
  summary: "List a user's credentials",
  description: "Sorted by provider, limited to the caller's providers, without token values. A user with nothing stored gets an empty list.",
  scope: 'tokens:read',
  params: userParams,
  responses: {
    200: json("The user's credentials.", listAnswer),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, caller, res }) {
    const credentials = await deps.credentials.list(params.user, (provider) => mayUseProvider(caller, provider));
    res.json({ user: params.user, credentials: credentials.map(publicView) } satisfies z.infer<typeof listAnswer>);
  },
});
