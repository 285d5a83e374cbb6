import { z } from 'zod';
import type { ErrorCode } from '../../errors';

/**
 * The pieces every endpoint's responses are described with: the one error shape of DESIGN §4,
 * the headers that carry meaning (ETag, Retry-After, Warning, ...) and the standard errors the
 * endpoint builders add by themselves. Plain zod: the express side types its answers with these
 * schemas, and src/http/openapi/document.ts turns them into openapi.yaml.
 */

/** What an endpoint can answer with one status. */
export interface ResponseSpec {
  description: string;
  /** The body by media type; none: the response has no body. */
  content?: { 'application/json'?: z.ZodType; 'text/plain'?: z.ZodType };
  /** Response headers by name; optional members are headers that are sometimes sent. */
  headers?: z.ZodObject;
  /** Set on the shared standard errors: written once under components/responses and referenced. */
  id?: string;
}

export type Responses = Partial<Record<number, ResponseSpec>>;

// Listed at runtime for the schema; the check below fails to compile when errors.ts gains a code.
const ERROR_CODES = [
  'invalid_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'reauth_required',
  'precondition_failed',
  'payload_too_large',
  'unsupported_media_type',
  'too_many_requests',
  'provider_error',
  'provider_unavailable',
  'unavailable',
  'key_in_use',
  'credential_unreadable',
  'internal',
] as const satisfies readonly ErrorCode[];
const everyCodeListed: [Exclude<ErrorCode, (typeof ERROR_CODES)[number]>] extends [never] ? true : false = true;
void everyCodeListed;

/** An ISO 8601 UTC time, as the vault writes them (`Date.toISOString()`). */
export const timestamp = z.iso.datetime().meta({ id: 'Timestamp', example: '2026-11-23T13:00:00.000Z' });

export const issue = z
  .strictObject({
    path: z.string().meta({ description: 'Where the problem is: `body.expires_in`, `params.user`, a key id, a readiness check.' }),
    message: z.string(),
  })
  .meta({ id: 'Issue' });

export const errorBody = z
  .strictObject({
    error: z.strictObject({
      code: z.enum(ERROR_CODES),
      message: z.string().meta({ description: 'For people; match on `code`.' }),
      details: z.array(issue).optional(),
    }),
  })
  .meta({ id: 'Error', description: 'Every error has this shape (DESIGN §4).' });
export type ErrorBody = z.infer<typeof errorBody>;

export const headers = {
  etag: z
    .string()
    .regex(/^"\d+"$/)
    .meta({ description: 'The record version as an entity tag, for `If-Match` on a later PUT or DELETE.', example: '"7"', header: { id: 'ETag' } }),
  retryAfter: z.string().regex(/^\d+$/).meta({ description: 'Seconds to wait before trying again.', example: '1', header: { id: 'RetryAfter' } }),
  location: z.string().meta({ description: 'Where the new resource is.', header: { id: 'Location' } }),
  stale: z.literal('110 - "stale"').meta({
    description: 'The refresh failed for a transient reason and the previous token, still valid, is served.',
    header: { id: 'Warning' },
  }),
  wwwAuthenticate: z.string().meta({ example: 'Bearer realm="token-vault"', header: { id: 'WWWAuthenticate' } }),
};

export function json(description: string, schema: z.ZodType, responseHeaders?: z.ZodObject): ResponseSpec {
  return { description, content: { 'application/json': schema }, ...(responseHeaders ? { headers: responseHeaders } : {}) };
}

/** An error answer (the Error body), with what it means on this route. */
export function failure(description: string, responseHeaders?: z.ZodObject): ResponseSpec {
  return json(description, errorBody, responseHeaders);
}

/** A 503 or 429: the Error body with Retry-After. */
export function retryLater(description: string): ResponseSpec {
  return failure(description, z.object({ 'Retry-After': headers.retryAfter }));
}

/** The errors the endpoint builders add to every route they apply to; a route may describe one more precisely. */
export const standard = {
  invalidRequest: { ...failure('`invalid_request`: a bad id, query, header or body; each problem is listed in `details`.'), id: 'InvalidRequest' },
  unauthorized: {
    ...failure('`unauthorized`: no, malformed or unknown API key, and no client certificate naming a caller.', z.object({ 'WWW-Authenticate': headers.wwwAuthenticate })),
    id: 'Unauthorized',
  },
  forbidden: { ...failure('`forbidden`: the caller lacks the scope, or may not use the provider.'), id: 'Forbidden' },
  payloadTooLarge: { ...failure('`payload_too_large`: the body is over `server.bodyLimit`.'), id: 'PayloadTooLarge' },
  unsupportedMediaType: { ...failure('`unsupported_media_type`: a body that is not `application/json`.'), id: 'UnsupportedMediaType' },
  tooManyRequests: {
    ...retryLater('`too_many_requests`: too many failed authentications from this address; every request from it is refused until `Retry-After`.'),
    id: 'TooManyRequests',
  },
  internal: { ...failure('`internal`: a bug, logged with its stack and answered without details.'), id: 'Internal' },
} satisfies Record<string, ResponseSpec>;

/** If-Match / If-None-Match, as preconditions.ts reads them (it answers 400 for anything else). */
export function conditionalHeaders(allowIfNoneMatch: boolean): z.ZodObject {
  const ifMatch = z.string().optional().meta({
    description: 'Write only if the record is at this version (`"7"`); `*`: only if it exists. A weak tag never matches (412).',
    example: '"7"',
  });
  if (!allowIfNoneMatch) return z.object({ 'If-Match': ifMatch });
  return z.object({
    'If-Match': ifMatch,
    'If-None-Match': z.literal('*').optional().meta({ description: 'Create only if no record exists (412 otherwise).' }),
  });
}

/**
 * True only when A and B are the same type. For answers a service builds (src/admin is not
 * ours to type from these schemas): `const matches: Same<ServiceView, z.infer<typeof schema>> = true`
 * stops compiling when either side changes.
 */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
