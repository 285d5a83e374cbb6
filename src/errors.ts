/**
 * Every failure a caller can see is an AppError with one of the codes of DESIGN §4. The central
 * error handler turns an AppError into `{ "error": { "code", "message", "details"? } }`; anything
 * else is logged once and answered as `internal` without details.
 */
export type ErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'reauth_required'
  | 'precondition_failed'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'too_many_requests'
  | 'provider_error'
  | 'provider_unavailable'
  | 'unavailable'
  | 'key_in_use'
  | 'credential_unreadable'
  | 'internal';

export abstract class AppError extends Error {
  abstract readonly code: ErrorCode;
  abstract readonly status: number;
  /** Extra response headers, such as Retry-After. */
  readonly headers: Record<string, string> = {};

  constructor(
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export interface IssueDetail {
  path: string;
  message: string;
}

export class InvalidRequestError extends AppError {
  readonly code = 'invalid_request';
  readonly status = 400;
  constructor(message: string, details?: IssueDetail[]) {
    super(message, details);
  }
}

export class UnauthorizedError extends AppError {
  readonly code = 'unauthorized';
  readonly status = 401;
  constructor(message = 'a valid API key is required: Authorization: Bearer <key>') {
    super(message);
    this.headers['WWW-Authenticate'] = 'Bearer realm="token-vault"';
  }
}

export class ForbiddenError extends AppError {
  readonly code = 'forbidden';
  readonly status = 403;
}

export class NotFoundError extends AppError {
  readonly code = 'not_found';
  readonly status = 404;
}

export class ReauthRequiredError extends AppError {
  readonly code = 'reauth_required';
  readonly status = 409;
}

export class PreconditionFailedError extends AppError {
  readonly code = 'precondition_failed';
  readonly status = 412;
}

export class PayloadTooLargeError extends AppError {
  readonly code = 'payload_too_large';
  readonly status = 413;
}

export class UnsupportedMediaTypeError extends AppError {
  readonly code = 'unsupported_media_type';
  readonly status = 415;
}

export class TooManyRequestsError extends AppError {
  readonly code = 'too_many_requests';
  readonly status = 429;
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.headers['Retry-After'] = String(retryAfterSeconds);
  }
}

export class ProviderError extends AppError {
  readonly code = 'provider_error';
  readonly status = 502;
}

export class ProviderUnavailableError extends AppError {
  readonly code = 'provider_unavailable';
  readonly status = 503;
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.headers['Retry-After'] = String(retryAfterSeconds);
  }
}

export class UnavailableError extends AppError {
  readonly code = 'unavailable';
  readonly status = 503;
  constructor(message: string, retryAfterSeconds = 1, cause?: unknown) {
    super(message);
    this.headers['Retry-After'] = String(retryAfterSeconds);
    if (cause !== undefined) this.cause = cause;
  }
}

export class KeyInUseError extends AppError {
  readonly code = 'key_in_use';
  readonly status = 409;
}

export type UnreadableReason = 'format' | 'unknown_kek' | 'tampered';

/** A stored record failed to open. The reason is logged and counted, never sent to the caller. */
export class CredentialUnreadableError extends AppError {
  readonly code = 'credential_unreadable';
  readonly status = 500;
  constructor(readonly reason: UnreadableReason) {
    super('the stored credential could not be decrypted; operators have been alerted');
  }
}

export class InternalError extends AppError {
  readonly code = 'internal';
  readonly status = 500;
  constructor() {
    super('internal error');
  }
}
