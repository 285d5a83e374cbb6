import { z } from 'zod';
import { endpoint } from '../../endpoint';
import { providerParams, requireProvider, userId } from '../../ids';
import { failure, json, retryLater, timestamp } from '../../openapi/common';

// RFC 6749 §3.3 scope-token: printable ASCII but space, " and \.
const scope = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,256}$/, 'a scope is printable ASCII without spaces, quotes or backslashes');

export const startConnectBody = z.strictObject({
  user: userId,
  return_to: z.string().max(2048).optional().meta({ description: 'Where the browser goes when the flow ends; must match `connect.returnTo`. Required for browser flows.' }),
  flow: z.enum(['browser', 'device']).default('browser'),
  scopes: z.array(scope).min(1).max(100).optional().meta({ description: "Overrides the provider's configured scopes for this connection (OAuth 2.0 only)." }),
}).meta({ id: 'StartConnect' });

const browserStarted = z
  .strictObject({
    id: z.string(),
    flow: z.enum(['authorization_code', 'oauth1']),
    url: z.string().meta({ description: "The vault's start URL for the user's browser; it binds the browser and redirects to the provider." }),
    expires_at: timestamp,
  })
  .meta({ id: 'BrowserConnectStarted' });

const deviceStarted = z
  .strictObject({
    id: z.string(),
    flow: z.literal('device'),
    user_code: z.string(),
    verification_uri: z.string(),
    verification_uri_complete: z.string().optional(),
    interval: z.number().int().meta({ description: 'Seconds between the polls the vault makes.' }),
    expires_at: timestamp,
  })
  .meta({ id: 'DeviceConnectStarted' });

const started = z.discriminatedUnion('flow', [browserStarted, deviceStarted]).meta({ id: 'ConnectStarted' });

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * POST /connect/:provider — starts a connect flow for a user. Browser flows (authorization code
 * with PKCE, OAuth 1.0a) answer the vault's own start URL for the user's browser; the device
 * flow answers the code the user enters at the provider, and the vault polls for the result.
 */
export const startConnect = endpoint({
  method: 'post',
  path: '/connect/:provider',
  operationId: 'startConnect',
  summary: 'Start connecting a user',
  description:
    "Browser flows (authorization code with PKCE, OAuth 1.0a) answer the vault's own start URL for the user's browser; " +
    'the device flow (RFC 8628) answers the code the user enters at the provider, and the vault polls for the result.',
  scope: 'connect',
  params: providerParams,
  body: startConnectBody,
  responses: {
    201: json('The flow started; follow it with GET /connect/sessions/{id}.', started),
    400: failure(
      '`invalid_request`: bad input; the provider has no connect URLs (or no `deviceAuthorizationUrl`); `return_to` is missing or not allowed; or `server.publicUrl` is unset.',
    ),
    404: failure('`not_found`: the provider is not configured.'),
    502: failure('`provider_error`: the OAuth 1.0a request-token call or the device authorization call failed.'),
    503: retryLater('`provider_unavailable`: the provider is down or slow; or `unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, body, caller, res }) {
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
      } satisfies z.infer<typeof started>);
    } else {
      res.json({ id: answer.id, flow: answer.flow, url: answer.url, expires_at: iso(answer.expiresAt) } satisfies z.infer<typeof started>);
    }
  },
});
