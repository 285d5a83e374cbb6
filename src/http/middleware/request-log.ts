import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';

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
    /** The request id (requestId()), set by requestLog() before any route runs. */
    id: string;
  }
}

/**
 * One log line per request, written when the response ends, with its id. Only the method, path,
 * address and user agent are logged: never Authorization, cookies or a body, so the line goes
 * through a logger without redaction paths (pino's redaction costs more than the rest of the
 * line on the hot path). Probes log at debug; 5xx answers at error.
 */
export function requestLog(logger: Logger): RequestHandler {
  const log = logger.child({}, { redact: [] });
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    req.id = requestId(req, res);
    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      const status = res.statusCode;
      const level = status >= 500 ? 'error' : PROBES.has(req.path) ? 'debug' : 'info';
      if (!log.isLevelEnabled(level)) return;
      const line = {
        reqId: req.id,
        req: { method: req.method, url: loggableUrl(req.originalUrl), remoteAddress: req.socket.remoteAddress, userAgent: req.headers['user-agent'] },
        res: { statusCode: status },
        responseTime: Number(process.hrtime.bigint() - started) / 1e6,
      };
      // A response that ended before it was sent in full (the client went away) says so.
      log[level](line, res.writableFinished ? 'request completed' : 'request aborted');
    };
    res.once('finish', done);
    res.once('close', done);
    next();
  };
}
