import { z } from 'zod';
import type { Credential } from '../../../credentials/credential';
import { isAppProvider } from '../../../config/schema';
import { publicView, publicViewSchema } from '../../../credentials/views';
import { InvalidRequestError } from '../../../errors';
import { Secret } from '../../../secret';
import { endpoint } from '../../endpoint';
import { credentialParams, credentialPath, requireProvider } from '../../ids';
import { conditionalHeaders, failure, headers, json, retryLater } from '../../openapi/common';
import { etag, expectedVersion } from '../../preconditions';

const MAX_LIFETIME_SECONDS = 315_360_000; // ten years
const METADATA_BYTES = 4096;

const token = z.string().min(1).max(16_384);
const optional = <T extends z.ZodType>(schema: T) => schema.nullish().transform((value) => value ?? null);
const metadata = z
  .record(z.string(), z.unknown())
  .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= METADATA_BYTES, `metadata must be at most ${METADATA_BYTES} bytes of JSON`);
const accountId = z.string().min(1).max(256);

const oauth2Body = z
  .strictObject({
    type: z.literal('oauth2'),
    access_token: token,
    refresh_token: optional(token),
    expires_in: optional(
      z
        .union([z.number(), z.string().regex(/^\d+$/, 'expires_in must be a whole number of seconds').transform(Number)])
        .pipe(z.number().int('expires_in must be a whole number of seconds').min(0).max(MAX_LIFETIME_SECONDS)),
    ),
    expires_at: optional(z.iso.datetime({ offset: true, error: 'expires_at must be an ISO 8601 date-time' })),
    token_type: optional(z.string().min(1).max(64)),
    scope: optional(z.string().max(4096)),
    id_token: optional(token),
    account_id: optional(accountId),
    metadata: optional(metadata),
  })
  .refine((body) => body.expires_in === null || body.expires_at === null, {
    message: 'give expires_in or expires_at, not both',
    path: ['expires_at'],
  })
  .meta({ id: 'StoreOAuth2Credential' });

const oauth1Body = z.strictObject({
  type: z.literal('oauth1'),
  oauth_token: token,
  oauth_token_secret: token,
  account_id: optional(accountId),
  metadata: optional(metadata),
}).meta({ id: 'StoreOAuth1Credential' });

export const putTokenBody = z
  .discriminatedUnion('type', [oauth2Body, oauth1Body], { error: 'type must be "oauth2" or "oauth1"' })
  .meta({ id: 'StoreCredential' });
export type PutTokenBody = z.output<typeof putTokenBody>;

/** The credential a PUT body describes, as of `now`. */
export function toCredential(body: PutTokenBody, now: number): Credential {
  const common = { issuedAt: now, accountId: body.account_id, metadata: body.metadata };
  if (body.type === 'oauth1') {
    return { ...common, type: 'oauth1', oauthToken: new Secret(body.oauth_token), oauthTokenSecret: new Secret(body.oauth_token_secret) };
  }
  let expiresAt: number | null = null;
  if (body.expires_in !== null) expiresAt = now + body.expires_in * 1000;
  if (body.expires_at !== null) expiresAt = Date.parse(body.expires_at);
  return {
    ...common,
    type: 'oauth2',
    accessToken: new Secret(body.access_token),
    refreshToken: body.refresh_token === null ? null : new Secret(body.refresh_token),
    idToken: body.id_token === null ? null : new Secret(body.id_token),
    tokenType: body.token_type ?? 'Bearer',
    scope: body.scope,
    expiresAt,
    refreshExpiresAt: null,
  };
}

const stored = (description: string, created: boolean) =>
  json(description, publicViewSchema, z.object({ ETag: headers.etag, ...(created ? { Location: headers.location } : {}) }));

/** PUT /tokens/:user/:provider — store a credential the caller obtained; 201 new, 200 replaced. */
export const putToken = endpoint({
  method: 'put',
  path: '/tokens/:user/:provider',
  operationId: 'putToken',
  summary: 'Store a credential',
  description:
    'A credential the caller obtained. Give `expires_in` or `expires_at`, not both; with neither the token has no known expiry. ' +
    '`null` is accepted for any optional field. Schedules the refresh.',
  scope: 'tokens:write',
  params: credentialParams,
  requestHeaders: conditionalHeaders(true),
  body: putTokenBody,
  responses: {
    200: stored('Replaced: the public view.', false),
    201: stored('Created: the public view.', true),
    400: failure('`invalid_request`: bad input or `If-Match`, a credential of the other type than the provider\'s, or a `client_credentials` provider.'),
    404: failure('`not_found`: the provider is not configured.'),
    412: failure('`precondition_failed`: `If-Match` or `If-None-Match` did not hold.'),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, body, caller, actor, req, res }) {
    const provider = requireProvider(deps, caller, params.provider);
    if (isAppProvider(provider)) {
      throw new InvalidRequestError(`provider "${params.provider}" is a client_credentials provider: the vault mints its app token at /tokens/_app/${params.provider}`);
    }
    if (body.type !== provider.type) {
      throw new InvalidRequestError(`provider "${params.provider}" takes ${provider.type} credentials`, [
        { path: 'body.type', message: `must be "${provider.type}"` },
      ]);
    }
    const credential = toCredential(body, deps.clock.now());
    const { meta, created } = await deps.credentials.put(actor, params.user, params.provider, provider, credential, expectedVersion(req, true));
    res.status(created ? 201 : 200).set('ETag', etag(meta.version));
    if (created) res.location(credentialPath(params.user, params.provider));
    res.json(publicView(meta));
  },
});
