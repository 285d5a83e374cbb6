import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): `webhook-signature` carries one
 * or more space-separated `v1,<base64 HMAC-SHA256>` entries over `${id}.${timestamp}.${body}`.
 * Signing with every current secret lets a receiver rotate: old and new secret both verify
 * until the old one is dropped.
 */
const SECRET_PREFIX = 'whsec_';
const SECRET_ERROR = 'webhook secrets look like whsec_<base64>';
const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

const SIGNATURE_VERSION = 'v1';
const HMAC_BYTES = 32;
/** Visible ASCII: a message id never needs spaces or control characters. */
const MESSAGE_ID = /^[\x21-\x7e]{1,256}$/;
/** Digits only; 15 of them stay far inside Number.MAX_SAFE_INTEGER. */
const TIMESTAMP = /^[0-9]{1,15}$/;

export interface StandardSignatureHeaders {
  id?: string;
  timestamp?: string;
  signature?: string;
}

export type StandardVerification = { ok: true; id: string; timestamp: number } | { ok: false; reason: string };

/**
 * The key bytes of a `whsec_<base64>` secret. Only canonical base64 (padding optional) is
 * accepted: Node's decoder silently skips bad characters, which would turn a typo into a
 * different, shorter key.
 */
export function webhookSecretBytes(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error(SECRET_ERROR);
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!BASE64.test(encoded) || encoded.length % 4 === 1 || (encoded.includes('=') && encoded.length % 4 !== 0)) {
    throw new Error(SECRET_ERROR);
  }
  const bytes = Buffer.from(encoded, 'base64');
  const unpadded = encoded.replace(/=+$/, '');
  if (bytes.toString('base64').replace(/=+$/, '') !== unpadded) throw new Error(SECRET_ERROR);
  if (bytes.length < MIN_SECRET_BYTES || bytes.length > MAX_SECRET_BYTES) throw new Error(SECRET_ERROR);
  return bytes;
}

/** The `webhook-signature` header value: one `v1,` entry per secret, space-separated. */
export function signWebhook(secrets: readonly Buffer[], id: string, timestampSeconds: number, body: string): string {
  if (secrets.length === 0) throw new Error('signing a webhook needs at least one secret');
  if (!MESSAGE_ID.test(id)) throw new Error('webhook ids are 1 to 256 visible ASCII characters');
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new Error('webhook timestamps are whole seconds since the epoch');
  }
  const content = Buffer.from(`${id}.${timestampSeconds}.${body}`, 'utf8');
  return secrets
    .map((secret) => `${SIGNATURE_VERSION},${createHmac('sha256', secret).update(content).digest('base64')}`)
    .join(' ');
}

/**
 * Verifies Standard Webhooks headers against the raw body bytes, before anything parses them.
 * Every key is tried against every `v1` entry without stopping early; entries of other versions
 * are skipped so a sender can add new schemes alongside v1. Reasons never quote a header.
 */
export function verifyStandardSignature(
  keys: readonly Buffer[],
  headers: StandardSignatureHeaders,
  body: Buffer,
  nowMs: number,
  toleranceSeconds: number,
): StandardVerification {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature) return { ok: false, reason: 'missing signature headers' };
  if (!MESSAGE_ID.test(id)) return { ok: false, reason: 'invalid webhook id' };
  if (!TIMESTAMP.test(timestamp)) return { ok: false, reason: 'invalid timestamp' };
  const seconds = Number(timestamp);
  if (Math.abs(Math.floor(nowMs / 1000) - seconds) > toleranceSeconds) {
    return { ok: false, reason: 'timestamp outside the tolerance' };
  }

  const prefix = Buffer.from(`${id}.${timestamp}.`, 'utf8');
  const expected = keys.map((key) => createHmac('sha256', key).update(prefix).update(body).digest());
  let matched = false;
  for (const entry of signature.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== SIGNATURE_VERSION) continue;
    const presented = Buffer.from(entry.slice(comma + 1), 'base64');
    if (presented.length !== HMAC_BYTES) continue;
    for (const digest of expected) {
      if (timingSafeEqual(digest, presented)) matched = true;
    }
  }
  if (!matched) return { ok: false, reason: 'signature does not match' };
  return { ok: true, id, timestamp: seconds };
}
