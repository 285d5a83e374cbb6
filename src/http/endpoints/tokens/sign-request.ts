import { z } from 'zod';
import { InvalidRequestError } from '../../../errors';
import { newNonce } from '../../../providers/oauth1/signature';
import { endpoint } from '../../endpoint';
import { credentialParams, requireProvider } from '../../ids';
import { failure, json, retryLater } from '../../openapi/common';

const formValue = z.string().max(65_536);

export const signRequestBody = z.strictObject({
  method: z.string().regex(/^[A-Za-z]{1,16}$/, 'method is an HTTP method such as GET or POST'),
  url: z
    .string()
    .max(8192)
    .refine((url) => URL.canParse(url) && /^https?:$/.test(new URL(url).protocol), 'url must be an absolute http(s) URL'),
  form: z.record(z.string().max(1024), z.union([formValue, z.array(formValue).max(100)])).optional(),
  nonce: z.string().regex(/^[\x21-\x7E]{1,128}$/, 'nonce is 1-128 printable ASCII characters').optional(),
  timestamp: z
    .union([z.string().regex(/^\d{1,12}$/, 'timestamp is whole seconds'), z.number().int().min(0).max(999_999_999_999).transform(String)])
    .optional(),
}).meta({ id: 'SignRequest' });

const signature = z.strictObject({
  authorization: z.string().meta({ description: 'The `Authorization` header value.', example: 'OAuth oauth_consumer_key="...", oauth_nonce="...", oauth_signature="..."' }),
  oauth_signature: z.string(),
});

/**
 * POST /tokens/:user/:provider/sign — the Authorization header for one OAuth 1.0a request (RFC
 * 5849 §3.4), signed inside the vault. `nonce` and `timestamp` default to random and now; they
 * exist for reproducible signatures.
 */
export const signOAuth1Request = endpoint({
  method: 'post',
  path: '/tokens/:user/:provider/sign',
  operationId: 'signOAuth1Request',
  summary: 'Sign an OAuth 1.0a request',
  description:
    'The `Authorization` header for one request (RFC 5849 §3.4), signed inside the vault, so the token secret never leaves it. ' +
    '`nonce` and `timestamp` default to random and now; they exist for reproducible signatures.',
  scope: 'tokens:sign',
  params: credentialParams,
  body: signRequestBody,
  responses: {
    200: json('The signed header.', signature),
    400: failure('`invalid_request`: bad input, or an OAuth 2.0 provider or credential.'),
    404: failure('`not_found`: no credential, or the provider is not configured.'),
    500: failure('`credential_unreadable`: the stored record failed to open; or `internal`.'),
    503: retryLater('`unavailable`: Redis is unreachable.'),
  },
  async handle({ deps, params, body, caller, actor, res }) {
    const provider = requireProvider(deps, caller, params.provider);
    if (provider.type !== 'oauth1') throw new InvalidRequestError(`provider "${params.provider}" is an OAuth 2.0 provider: only OAuth 1.0a requests are signed`);
    const signed = await deps.credentials.sign(
      actor,
      params.user,
      params.provider,
      provider,
      { method: body.method, url: body.url, ...(body.form ? { form: body.form } : {}) },
      { nonce: body.nonce ?? newNonce(), timestamp: body.timestamp ?? String(Math.floor(deps.clock.now() / 1000)) },
    );
    res.json({ authorization: signed.authorization, oauth_signature: signed.signature } satisfies z.infer<typeof signature>);
  },
});
