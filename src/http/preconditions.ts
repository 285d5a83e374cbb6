import type { Request } from 'express';
import { InvalidRequestError, PreconditionFailedError } from '../errors';
import { ANY_VERSION, type ExpectedVersion } from '../store/credential-store';

/** A record version as an entity tag: `"12"`. */
export const etag = (version: number) => `"${version}"`;

const VERSION_TAG = /^"(\d{1,15})"$|^(\d{1,15})$/;

/**
 * Conditional writes: `If-Match: "<version>"` (or `*`: must exist) and, on PUT,
 * `If-None-Match: *` (must not exist). Anything else in those headers is a 400, not ignored.
 */
export function expectedVersion(req: Request, allowIfNoneMatch: boolean): ExpectedVersion {
  const ifMatch = req.get('if-match')?.trim();
  const ifNoneMatch = req.get('if-none-match')?.trim();
  if (ifNoneMatch !== undefined) {
    if (!allowIfNoneMatch || ifNoneMatch !== '*' || ifMatch !== undefined) {
      throw new InvalidRequestError('If-None-Match is supported only as "*" on PUT, without If-Match');
    }
    return { kind: 'absent' };
  }
  if (ifMatch === undefined) return ANY_VERSION;
  if (ifMatch === '*') return { kind: 'exists' };
  // RFC 9110 §13.1.1: If-Match uses the strong comparison, which a weak tag never passes.
  if (ifMatch.startsWith('W/')) throw new PreconditionFailedError('weak entity tags never match If-Match');
  const match = VERSION_TAG.exec(ifMatch);
  if (!match) throw new InvalidRequestError('If-Match must be a record version such as "12", or *');
  return { kind: 'exact', version: Number(match[1] ?? match[2]) };
}
