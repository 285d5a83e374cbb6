import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import {
  AppError,
  InternalError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
} from '../../errors';
import { sendJson } from '../json-response';

/** Errors from express and body-parser, typed; everything unknown becomes `internal`. */
function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const { type, status } = (err ?? {}) as { type?: string; status?: number };
  switch (type) {
    case 'entity.too.large':
      return new PayloadTooLargeError('the request body is too large');
    case 'entity.parse.failed':
      return new InvalidRequestError('the request body is not valid JSON');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new UnsupportedMediaTypeError('request bodies must be UTF-8 JSON');
    case 'request.aborted':
    case 'request.size.invalid':
      return new InvalidRequestError('the request body was incomplete');
  }
  // express answers a malformed percent-encoding in the path with a 400.
  if (status === 400) return new InvalidRequestError('the request URL is malformed');
  return new InternalError();
}

export function notFound(): RequestHandler {
  return (req) => {
    throw new NotFoundError(`no route for ${req.method} ${req.path}`);
  };
}

/** Express's last middleware: every error a route or express itself throws, answered by sendError(). */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    sendError(logger, req, res, err);
  };
}

/**
 * Turns an error into the DESIGN §4 shape, for express's routes and the hot route alike.
 * Unexpected errors are logged once, with their stack, and answered without details; 5xx
 * AppErrors are logged with their cause.
 */
export function sendError(logger: Logger, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const error = toAppError(err);
  if (error instanceof InternalError) logger.error({ reqId: req.id, err }, 'unhandled error');
  else if (error.status >= 500) logger.warn({ reqId: req.id, code: error.code, cause: describe(error.cause) }, error.message);
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  sendJson(res, error.status, { error: { code: error.code, message: error.message, ...(error.details === undefined ? {} : { details: error.details }) } });
}

function describe(cause: unknown): string | undefined {
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : undefined;
}
