import { hostname } from 'node:os';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../config/load';

/**
 * Paths that may carry secrets. Request bodies are never logged (they carry tokens), nor is the
 * raw body a JSON parse error keeps (`err.body`), nor a Redis command's arguments. The request
 * line (http/middleware/request-lifecycle.ts) logs no headers but the user agent; the header
 * paths here are the second line of defence.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'req.body',
  'res.body',
  'body',
  'err.body',
  'err.command',
  'err.cause.command',
  'err.cause.body',
  'access_token',
  'refresh_token',
  'id_token',
  'oauth_token',
  'oauth_token_secret',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.oauth_token',
  '*.oauth_token_secret',
  '*.client_secret',
  '*.clientSecret',
  '*.consumerSecret',
  '*.authorization',
  '*.password',
];

const base = () => ({ pid: process.pid, hostname: hostname() });

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = { level, base: base(), redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Audit entries for credential writes, deletes and reveals and key operations. They are written
 * whatever LOG_LEVEL says (verbosity cannot turn an audit trail off) to the same destination as
 * the logs, marked `"audit": true`. Writing is asynchronous in production (pino.destination with
 * sync: false, flushed at shutdown), so an audit entry costs the hot path a buffer append.
 */
export interface AuditEntry {
  action: string;
  caller: string;
  outcome: 'ok' | 'not_found' | 'refused' | 'failed';
  user?: string;
  provider?: string;
  version?: number;
  request_id?: string;
  [extra: string]: unknown;
}

export interface AuditLog {
  record(entry: AuditEntry): void;
}

export function createAuditLog(destination?: DestinationStream): AuditLog {
  // Audit entries are flat (no nested objects carry secrets, and secret values are Secret
  // wrappers that redact themselves): the top-level paths suffice, and the `*.` wildcards, which
  // cost pino a walk of every entry, are left to the general logger.
  const paths = REDACT_PATHS.filter((path) => !path.startsWith('*.'));
  const options = { level: 'info', base: { ...base(), audit: true }, redact: { paths, censor: '[redacted]' } };
  const log = destination ? pino(options, destination) : pino(options);
  return { record: (entry) => log.info(entry, entry.action) };
}
