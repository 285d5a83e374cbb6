import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { parse as parseQuery, type ParsedUrlQuery } from 'node:querystring';
import type { Deps } from '../deps';
import { validate } from './endpoint';
import { answerTokenRead, getToken, getTokenQuery, TOKEN_READ_SCOPE } from './endpoints/tokens/get-token';
import { credentialParams } from './ids';
import { identify } from './middleware/auth';
import { sendError } from './middleware/errors';
import { requestObserver } from './middleware/request-lifecycle';

/** `/tokens/<user>/<provider>` with an optional query: anything else (a trailing slash, `//`, a fragment) is express's. */
const TOKEN_PATH = /^\/tokens\/([^/?#]+)\/([^/?#]+)(?:\?([^#]*))?$/;

interface Target {
  params: { user: string; provider: string };
  query: ParsedUrlQuery;
}

/**
 * GET /tokens/:user/:provider, the call every service makes, served without express: express's
 * per-request machinery (prototype swaps, the router's layer walk, res.json) cost about as much
 * CPU as everything the read itself does (the Redis read, two AES-GCM opens, the audit entry and
 * request line), as bench/get.ts measures (README "Benchmarks"). Everything the route does is
 * shared with its express registration, which stays in the route table and in openapi.yaml: the
 * request observer (id, headers, log line, histogram), identify(), the zod schemas,
 * answerTokenRead() and sendError().
 *
 * It takes a request only when express would route it to that endpoint: method GET, a path of
 * exactly `/tokens/<user>/<provider>` whose segments percent-decode. Everything else goes to
 * express untouched: HEAD, a trailing slash, other letter case, malformed percent-encoding
 * (express's 400) and a user starting with `_` (`/tokens/_app/...` is the app token's route).
 */
export function withHotRoute(deps: Deps, app: RequestListener): RequestListener {
  const observe = requestObserver(deps);
  return (req, res) => {
    const target = req.method === 'GET' ? hotTarget(req.url) : null;
    if (!target) {
      app(req, res);
      return;
    }
    observe(req, res);
    req.hotRoute = getToken.path;
    serve(deps, req, res, target).catch((err: unknown) => {
      if (!res.headersSent) return sendError(deps.logger, req, res, err);
      deps.logger.error({ reqId: req.id, err }, 'error after the answer started');
      res.destroy();
    });
  };
}

async function serve(deps: Deps, req: IncomingMessage, res: ServerResponse, target: Target): Promise<void> {
  // The order of endpoint(): authenticate, then params, then query.
  const caller = identify(deps, req, TOKEN_READ_SCOPE);
  const params = validate('params', credentialParams, target.params);
  const query = validate('query', getTokenQuery, target.query);
  await answerTokenRead(deps, caller, { caller: caller.name, requestId: req.id }, params, query, res);
}

/** The route's params and query, as express's router and its 'simple' query parser (node:querystring) would give them; null: not this route's. */
function hotTarget(url: string | undefined): Target | null {
  const match = url === undefined ? null : TOKEN_PATH.exec(url);
  if (!match) return null;
  const user = decodeSegment(match[1] as string);
  const provider = decodeSegment(match[2] as string);
  if (user === null || provider === null || user.startsWith('_')) return null;
  return { params: { user, provider }, query: parseQuery(match[3] ?? '') };
}

function decodeSegment(segment: string): string | null {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}
