import express, { type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { Caller } from '../auth/callers';
import type { Scope } from '../config/schema';
import type { Actor } from '../credentials/credential-service';
import type { Deps } from '../deps';
import { InvalidRequestError } from '../errors';
import { authenticate } from './middleware/auth';
import { jsonBody } from './middleware/json-body';
import { standard, type Responses } from './openapi/common';

export type Method = 'get' | 'head' | 'put' | 'post' | 'delete';

/** Who may call a route: anyone ('public': probes, browsers, signed webhooks), any valid caller, or a caller with a scope. */
export type Access = 'public' | 'caller' | Scope;

/**
 * One row of the route table (routes.ts): everything express needs to register the route and
 * everything openapi.yaml says about it, so the two cannot disagree.
 */
export interface Route {
  readonly method: Method;
  /** The express template, `/tokens/:user/:provider`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly access: Access;
  /** Also served on the server.publicPort listener (browsers and providers, no client certificate). */
  readonly publicPort?: boolean;
  readonly request: {
    readonly params?: z.ZodObject;
    readonly query?: z.ZodObject;
    /** Request headers the handler reads itself (preconditions.ts parses If-Match). */
    readonly headers?: z.ZodObject;
    readonly body?: { readonly contentType: string; readonly schema: z.ZodType; readonly description?: string };
  };
  /** Every status the route answers, the standard errors included. */
  readonly responses: Responses;
  handlers(deps: Deps): RequestHandler[];
}

interface Description {
  method: Method;
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  /** What the handler answers; the builder adds the errors its checks produce (auth, validation, body). */
  responses: Responses;
  /** Request headers the handler reads itself (preconditions.ts parses If-Match): described, not validated here. */
  requestHeaders?: z.ZodObject;
  /**
   * Also served on the server.publicPort listener: what browsers and providers reach, without a
   * client certificate. Every other route answers 404 there, as an unknown route does.
   */
  publicPort?: true;
}

const none = z.strictObject({});
type None = typeof none;

export interface EndpointInput<P, Q, B> {
  deps: Deps;
  params: P;
  query: Q;
  body: B;
  caller: Caller;
  actor: Actor;
  req: Request;
  res: Response;
}

export interface EndpointSpec<PS extends z.ZodObject, QS extends z.ZodObject, BS extends z.ZodType> extends Description {
  /** null: any authenticated caller. */
  scope: Scope | null;
  params?: PS;
  /** Unknown query parameters are refused (400); none given: no query parameters at all. */
  query?: QS;
  /** A JSON body. */
  body?: BS;
  handle(input: EndpointInput<z.output<PS>, z.output<QS>, z.output<BS>>): Promise<void>;
}

/**
 * An authenticated endpoint: authenticate → (JSON body) → validate params, query and body with
 * their zod schemas → handle. Invalid input is a 400 listing every issue by where it was found
 * (`params.user`, `query.min_ttl`, `body.expires_in`).
 */
export function endpoint<PS extends z.ZodObject = None, QS extends z.ZodObject = None, BS extends z.ZodType = z.ZodUndefined>(
  spec: EndpointSpec<PS, QS, BS>,
): Route {
  const params = spec.params ?? none;
  const query = spec.query ?? none;
  const handle = (deps: Deps): RequestHandler => async (req, res) => {
    const caller = req.caller as Caller;
    await spec.handle({
      deps,
      params: validate('params', params, req.params) as z.output<PS>,
      query: validate('query', query, req.query) as z.output<QS>,
      body: (spec.body ? validate('body', spec.body, req.body) : undefined) as z.output<BS>,
      caller,
      actor: { caller: caller.name, requestId: String(req.id) },
      req,
      res,
    });
  };
  return {
    ...descriptionOf(spec),
    access: spec.scope ?? 'caller',
    request: {
      params,
      query,
      ...(spec.requestHeaders ? { headers: spec.requestHeaders } : {}),
      ...(spec.body ? { body: { contentType: 'application/json', schema: spec.body } } : {}),
    },
    responses: {
      400: standard.invalidRequest,
      401: standard.unauthorized,
      ...(spec.scope === null ? {} : { 403: standard.forbidden }),
      ...(spec.body ? { 413: standard.payloadTooLarge, 415: standard.unsupportedMediaType } : {}),
      429: standard.tooManyRequests,
      500: standard.internal,
      ...spec.responses,
    },
    handlers: (deps) => [authenticate(deps, spec.scope), ...(spec.body ? jsonBody(deps.loaded.bodyLimitBytes) : []), handle(deps)],
  };
}

export interface PublicEndpointInput<P, Q> {
  deps: Deps;
  params: P;
  query: Q;
  req: Request;
  res: Response;
}

export interface PublicEndpointSpec<PS extends z.ZodObject, QS extends z.ZodObject> extends Description {
  params?: PS;
  /** Validated when given; otherwise the query is ignored. */
  query?: QS;
  /** A body the handler reads as raw bytes (a webhook signature covers them); described, not parsed here. */
  rawBody?: { contentType: string; schema: z.ZodType; description: string };
  /** Headers set on every answer of the route, errors included: they are set before anything is checked. */
  alwaysHeaders?: Record<string, string>;
  handle(input: PublicEndpointInput<z.output<PS>, z.output<QS>>): Promise<void> | void;
}

/** A route without an API key: probes, the user's browser, webhooks verified by signature. */
export function publicEndpoint<PS extends z.ZodObject = None, QS extends z.ZodObject = None>(spec: PublicEndpointSpec<PS, QS>): Route {
  const validates = spec.params !== undefined || spec.query !== undefined || spec.rawBody !== undefined;
  const handle = (deps: Deps): RequestHandler => async (req, res) => {
    if (spec.alwaysHeaders) res.set(spec.alwaysHeaders);
    await spec.handle({
      deps,
      params: (spec.params ? validate('params', spec.params, req.params) : {}) as z.output<PS>,
      query: (spec.query ? validate('query', spec.query, req.query) : {}) as z.output<QS>,
      req,
      res,
    });
  };
  return {
    ...descriptionOf(spec),
    access: 'public',
    request: {
      ...(spec.params ? { params: spec.params } : {}),
      ...(spec.query ? { query: spec.query } : {}),
      ...(spec.requestHeaders ? { headers: spec.requestHeaders } : {}),
      ...(spec.rawBody ? { body: spec.rawBody } : {}),
    },
    responses: {
      ...(validates ? { 400: standard.invalidRequest } : {}),
      ...(spec.rawBody ? { 413: standard.payloadTooLarge } : {}),
      500: standard.internal,
      ...spec.responses,
    },
    handlers: (deps) => [...(spec.rawBody ? [express.raw({ type: () => true, limit: deps.loaded.bodyLimitBytes })] : []), handle(deps)],
  };
}

function descriptionOf(spec: Description) {
  return {
    method: spec.method,
    path: spec.path,
    operationId: spec.operationId,
    summary: spec.summary,
    ...(spec.description ? { description: spec.description } : {}),
    ...(spec.publicPort ? { publicPort: true } : {}),
  };
}

export function validate<T>(where: 'params' | 'query' | 'body', schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const details = parsed.error.issues.map((issue) => ({
    path: [where, ...issue.path.map(String)].join('.'),
    message: issue.message,
  }));
  throw new InvalidRequestError(`invalid ${where}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
}
