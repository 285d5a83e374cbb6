import { z } from 'zod';
import { readCookies, sendBrowser } from '../../cookies';
import { publicEndpoint } from '../../endpoint';
import { providerId } from '../../ids';
import { failure, retryLater } from '../../openapi/common';
import { SESSION_ID } from './get-session';

const startParams = z.strictObject({ session: z.string().regex(SESSION_ID, 'not a connect session id') });
const callbackParams = z.strictObject({ provider: providerId });

// Known parameters; a provider may add its own (iss, session_state, ...). RFC 6749 §3.1: none may repeat.
const param = (description: string) => z.string().optional().meta({ description });
const callbackQuery = z.looseObject({
  state: param('The flow\'s single-use state (OAuth 2.0; the vault adds it to the OAuth 1.0a callback too).'),
  code: param('OAuth 2.0 authorization code.'),
  error: param('OAuth error code from the provider.'),
  error_description: param('The provider\'s explanation of `error`.'),
  oauth_token: param('OAuth 1.0a temporary token.'),
  oauth_verifier: param('OAuth 1.0a verifier.'),
  denied: param('OAuth 1.0a: the user declined (Twitter).'),
});

// The URLs of these pages carry the state and the code: no Referer may leave, error pages included.
const noReferrer = { 'Referrer-Policy': 'no-referrer' };
const redirectHeaders = z.object({
  Location: z.string().meta({ description: 'The provider\'s authorization page, or `return_to` with the outcome.' }),
  'Set-Cookie': z.string().meta({ description: 'The HttpOnly, SameSite=Lax cookie binding the flow to this browser (set at the start, cleared at the callback).' }),
  'Referrer-Policy': z.literal('no-referrer'),
});
const notTiedToAFlow =
  '`invalid_request`: the request cannot be tied to a flow (unknown, finished or expired, opened in another browser, or without its cookie). ' +
  'An error page for the browser: there is no `return_to` to trust.';

/** HEAD /connect/start/:session (public) — link checkers and previews: binds nothing. */
export const probeConnectStart = publicEndpoint({
  method: 'head',
  path: '/connect/start/:session',
  publicPort: true,
  operationId: 'probeConnectStart',
  summary: 'Check a connect link without opening it',
  description: 'For link checkers and previews: binds nothing.',
  alwaysHeaders: noReferrer,
  params: startParams,
  responses: {
    204: { description: 'A well-formed link; nothing was bound.' },
  },
  handle({ res }) {
    res.status(204).end();
  },
});

/** GET /connect/start/:session (public) — binds the flow to this browser, then redirects to the provider. */
export const openConnect = publicEndpoint({
  method: 'get',
  path: '/connect/start/:session',
  publicPort: true,
  operationId: 'openConnect',
  summary: "Open a connect link (the user's browser)",
  description: 'Binds the flow to this browser with a cookie, then redirects to the provider. Opening it again from the same browser works (a reload).',
  alwaysHeaders: noReferrer,
  params: startParams,
  responses: {
    302: { description: "To the provider's authorization page.", headers: redirectHeaders },
    400: failure(notTiedToAFlow),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, req, res }) {
    sendBrowser(res, await deps.connect.open(params.session, readCookies(req)));
  },
});

/**
 * GET /callback/:provider (public) — where the provider sends the browser back: finishes the
 * flow and redirects to its return_to with `status=connected` or `status=error&error=...`.
 */
export const connectCallback = publicEndpoint({
  method: 'get',
  path: '/callback/:provider',
  publicPort: true,
  operationId: 'connectCallback',
  summary: 'Finish a connect flow (the provider sends the browser here)',
  description: 'Checks state, browser and single use, stores the credential, and redirects to `return_to` with `?status=connected` or `?status=error&error=...`.',
  alwaysHeaders: noReferrer,
  params: callbackParams,
  query: callbackQuery,
  responses: {
    302: { description: 'To `return_to`, with the outcome in its query.', headers: redirectHeaders },
    400: failure(`${notTiedToAFlow} Also for a parameter given twice.`),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, query, req, res }) {
    sendBrowser(res, await deps.connect.callback(params.provider, deps.providers.get(params.provider), query, readCookies(req)));
  },
});
