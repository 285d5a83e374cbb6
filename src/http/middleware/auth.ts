import type { RequestHandler } from 'express';
import { type Caller } from '../../auth/callers';
import type { Scope } from '../../config/schema';
import type { Deps } from '../../deps';
import { ForbiddenError, TooManyRequestsError, UnauthorizedError } from '../../errors';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by authenticate() on routes that need a caller. */
    caller?: Caller;
  }
}

const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

/**
 * `Authorization: Bearer <API key>` → the caller, who must hold `scope` (null: any caller). 401 for a missing or
 * unknown key, 403 for a missing scope. An address with too many failed attempts in the last
 * minute is refused (429) before its key is even looked at.
 */
export function authenticate(deps: Deps, scope: Scope | null): RequestHandler {
  return (req, _res, next) => {
    const address = req.socket.remoteAddress ?? 'unknown';
    const blockedFor = deps.authFailures.blockedFor(address);
    if (blockedFor > 0) {
      deps.metrics.authFailures.inc({ reason: 'rate_limited' });
      throw new TooManyRequestsError('too many failed authentications from this address; retry later', blockedFor);
    }
    const match = BEARER.exec(req.get('authorization') ?? '');
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
    if (scope !== null && !caller.scopes.has(scope)) {
      deps.metrics.authFailures.inc({ reason: 'scope' });
      throw new ForbiddenError(`caller "${caller.name}" lacks the ${scope} scope`);
    }
    req.caller = caller;
    next();
  };
}
