import type { RequestHandler } from 'express';
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { type Caller } from '../../auth/callers';
import type { Scope } from '../../config/schema';
import type { Deps } from '../../deps';
import { ForbiddenError, TooManyRequestsError, UnauthorizedError } from '../../errors';
import { describeSubject } from '../../tls/distinguished-name';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by authenticate() on routes that need a caller. */
    caller?: Caller;
  }
}

const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

/**
 * The caller, who must hold `scope` (null: any caller); 403 for a missing scope. Who the caller
 * is, in this order:
 *   1. an Authorization header, when there is one, decides: `Bearer <API key>` of a caller, or
 *      401 (a key that is wrong is never rescued by a certificate on the same connection);
 *   2. otherwise a client certificate that the server's CA verified (server.tls.ca) and whose
 *      subject matches a caller's certSubject; a verified certificate matching no caller is a
 *      401; a certificate the CA did not verify never identifies anyone;
 *   3. otherwise 401.
 * An address with too many failed attempts in the last minute is refused (429) before anything
 * it presents is looked at. Failure reasons are the `reason` label of
 * token_vault_auth_failures_total.
 */
export function authenticate(deps: Deps, scope: Scope | null): RequestHandler {
  return (req, _res, next) => {
    req.caller = identify(deps, req, scope);
    next();
  };
}

/** authenticate()'s check, for the hot route (http/hot-route.ts), which runs without express. */
export function identify(deps: Deps, req: IncomingMessage, scope: Scope | null): Caller {
  const address = req.socket.remoteAddress ?? 'unknown';
  const blockedFor = deps.authFailures.blockedFor(address);
  if (blockedFor > 0) {
    deps.metrics.authFailures.inc({ reason: 'rate_limited' });
    throw new TooManyRequestsError('too many failed authentications from this address; retry later', blockedFor);
  }
  const header = req.headers.authorization;
  const caller = header === undefined ? byCertificate(deps, req, address) : byApiKey(deps, header, address);
  if (scope !== null && !caller.scopes.has(scope)) {
    deps.metrics.authFailures.inc({ reason: 'scope' });
    throw new ForbiddenError(`caller "${caller.name}" lacks the ${scope} scope`);
  }
  return caller;
}

function byApiKey(deps: Deps, header: string, address: string): Caller {
  const match = BEARER.exec(header);
  if (!match?.[1]) {
    deps.metrics.authFailures.inc({ reason: 'missing' });
    throw new UnauthorizedError();
  }
  const caller = deps.callers.authenticate(match[1]);
  if (!caller) {
    deps.authFailures.recordFailure(address);
    deps.metrics.authFailures.inc({ reason: 'unknown_key' });
    throw new UnauthorizedError('the API key is not valid');
  }
  return caller;
}

function byCertificate(deps: Deps, req: IncomingMessage, address: string): Caller {
  const socket = req.socket;
  // getPeerCertificate() answers {} when the client sent none (or none was asked for).
  const certificate = socket instanceof TLSSocket ? socket.getPeerCertificate() : undefined;
  if (!(socket instanceof TLSSocket) || certificate === undefined || Object.keys(certificate).length === 0) {
    deps.metrics.authFailures.inc({ reason: 'missing' });
    throw new UnauthorizedError(
      socket instanceof TLSSocket && deps.config.server.tls?.ca !== undefined
        ? 'a valid API key (Authorization: Bearer <key>) or client certificate is required'
        : undefined,
    );
  }
  if (!socket.authorized) {
    // Only reachable when server.tls.requireClientCert is false: the handshake let it through.
    deps.authFailures.recordFailure(address);
    deps.metrics.authFailures.inc({ reason: 'untrusted_cert' });
    const why = socket.authorizationError ? ` (${String(socket.authorizationError)})` : '';
    throw new UnauthorizedError(`the client certificate was not issued by a CA this vault trusts${why}; use an API key or a certificate from server.tls.ca`);
  }
  const caller = deps.callers.authenticateCertificate(certificate.subject);
  if (!caller) {
    deps.authFailures.recordFailure(address);
    deps.metrics.authFailures.inc({ reason: 'unknown_cert' });
    throw new UnauthorizedError(`the client certificate's subject "${describeSubject(certificate.subject)}" is no caller's certSubject`);
  }
  return caller;
}
