import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Metrics } from '../../observability/metrics';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PROBES = new Set(['/healthz', '/readyz', '/metrics']);
/** Query parameters whose values are safe to log; every other value (a callback's code, state, oauth_verifier) is not. */
const LOGGED_QUERY = new Set(['min_ttl', 'status']);

/** The URL with the value of every query parameter not known to be harmless replaced. */
export function loggableUrl(url: string): string {
  const at = url.indexOf('?');
  if (at < 0) return url;
  const query = new URLSearchParams(url.slice(at + 1));
  for (const name of new Set(query.keys())) if (!LOGGED_QUERY.has(name)) query.set(name, '[redacted]');
  return `${url.slice(0, at)}?${query.toString()}`;
}

/** A caller's X-Request-Id when it is well-formed, else a new one; echoed on the response. */
export function requestId(req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('X-Request-Id', id);
  return id;
}

declare module 'node:http' {
  interface IncomingMessage {
    /** The request id (requestId()), set by requestObserver() before any route runs. */
    id: string;
    /** The route template of a request the hot route (http/hot-route.ts) answers; express's requests carry theirs in req.route. */
    hotRoute?: string;
  }
}

/** The template of the route that answered (`/tokens/:user/:provider`), never the path; undefined when none matched. */
export function routeTemplate(req: IncomingMessage): string | undefined {
  if (req.hotRoute !== undefined) return req.hotRoute;
  const route: unknown = (req as IncomingMessage & { route?: { path?: unknown } }).route?.path;
  return typeof route === 'string' ? route : undefined;
}

export interface LifecycleDeps {
  logger: Logger;
  metrics: Metrics;
  state: { shuttingDown: boolean };
}

/**
 * What every request gets, on express's routes and on the hot route alike: an id, the headers
 * every answer carries, and one observation when the response ends, from a single 'close'
 * listener:
 *   - the latency histogram, by method, route template (never the path: it holds user ids) and
 *     status, for responses sent in full;
 *   - one log line with the method, path, address and user agent: never Authorization, cookies
 *     or a body, so it goes through a logger without redaction paths (pino's redaction costs
 *     more than the rest of the line). Probes log at debug; 5xx answers at error.
 */
export function requestObserver({ logger, metrics, state }: LifecycleDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const log = logger.child({}, { redact: [] });
  return (req, res) => {
    const started = performance.now();
    // Before any routing: express may rewrite req.url on the way.
    const url = req.url ?? '/';
    req.id = requestId(req, res);
    // Responses may carry credentials; nothing may cache them.
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (state.shuttingDown) res.setHeader('Connection', 'close');
    res.once('close', () => {
      const ms = performance.now() - started;
      const status = res.statusCode;
      const template = routeTemplate(req) ?? 'unmatched';
      // 'close' also ends a response the client walked away from: it is logged, not timed.
      if (res.writableFinished) metrics.httpDuration.observe({ method: req.method as string, route: template, status: String(status) }, ms / 1000);
      const level = status >= 500 ? 'error' : PROBES.has(template) ? 'debug' : 'info';
      if (!log.isLevelEnabled(level)) return;
      const line = {
        reqId: req.id,
        req: { method: req.method, url: loggableUrl(url), remoteAddress: req.socket.remoteAddress, userAgent: req.headers['user-agent'] },
        res: { statusCode: status },
        responseTime: ms,
      };
      log[level](line, res.writableFinished ? 'request completed' : 'request aborted');
    });
  };
}

/** requestObserver() as express's first middleware. */
export function requestLifecycle(deps: LifecycleDeps): RequestHandler {
  const observe = requestObserver(deps);
  return (req, res, next) => {
    observe(req, res);
    next();
  };
}
