import { z } from 'zod';
import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';
import { providerParams, requireProvider, userId } from '../../ids';

// RFC 6749 §3.3 scope-token: printable ASCII but space, " and \.
const scope = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,256}$/, 'a scope is printable ASCII without spaces, quotes or backslashes');

export const startConnectBody = z.strictObject({
  user: userId,
  return_to: z.string().max(2048).optional(),
  flow: z.enum(['browser', 'device']).default('browser'),
  /** Overrides the provider's configured scopes for this connection. */
  scopes: z.array(scope).min(1).max(100).optional(),
});

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * POST /connect/:provider — starts a connect flow for a user. Browser flows (authorization code
 * with PKCE, OAuth 1.0a) answer the vault's own start URL for the user's browser; the device
 * flow answers the code the user enters at the provider, and the vault polls for the result.
 */
export function startConnect(deps: Deps) {
  return endpoint(deps, {
    scope: 'connect',
    params: providerParams,
    body: startConnectBody,
    async handle({ params, body, caller, res }) {
      const provider = requireProvider(deps, caller, params.provider);
      const answer = await deps.connect.start(caller.name, params.provider, provider, {
        user: body.user,
        returnTo: body.return_to ?? null,
        flow: body.flow,
        scopes: body.scopes ?? null,
      });
      res.status(201);
      if (answer.flow === 'device') {
        res.json({
          id: answer.id,
          flow: 'device',
          user_code: answer.userCode,
          verification_uri: answer.verificationUri,
          ...(answer.verificationUriComplete ? { verification_uri_complete: answer.verificationUriComplete } : {}),
          interval: answer.interval,
          expires_at: iso(answer.expiresAt),
        });
      } else {
        res.json({ id: answer.id, flow: answer.flow, url: answer.url, expires_at: iso(answer.expiresAt) });
      }
    },
  });
}
