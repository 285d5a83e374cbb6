import type { Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import type { Caller } from '../auth/callers';
import type { Scope } from '../config/schema';
import type { Actor } from '../credentials/credential-service';
import type { Deps } from '../deps';
import { InvalidRequestError } from '../errors';
import { authenticate } from './middleware/auth';
import { jsonBody } from './middleware/json-body';

export interface EndpointInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  caller: Caller;
  actor: Actor;
  req: Request;
  res: Response;
}

export interface EndpointSpec<P, Q, B> {
  /** null: any authenticated caller. */
  scope: Scope | null;
  params: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  handle(input: EndpointInput<P, Q, B>): Promise<void>;
}

const noQuery = z.strictObject({});

/**
 * An authenticated endpoint: authenticate → (JSON body) → validate params, query and body with
 * their zod schemas → handle. Invalid input is a 400 listing every issue by where it was found
 * (`params.user`, `query.min_ttl`, `body.expires_in`).
 */
export function endpoint<P, Q = Record<string, never>, B = undefined>(deps: Deps, spec: EndpointSpec<P, Q, B>): RequestHandler[] {
  const handle: RequestHandler = async (req, res) => {
    const caller = req.caller as Caller;
    await spec.handle({
      params: validate('params', spec.params, req.params),
      query: validate('query', (spec.query ?? noQuery) as z.ZodType<Q>, req.query),
      body: spec.body ? validate('body', spec.body, req.body) : (undefined as B),
      caller,
      actor: { caller: caller.name, requestId: String(req.id) },
      req,
      res,
    });
  };
  return [authenticate(deps, spec.scope), ...(spec.body ? jsonBody(deps.loaded.bodyLimitBytes) : []), handle];
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
