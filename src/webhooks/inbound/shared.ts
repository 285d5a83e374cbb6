import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Verification } from './verifier';

/**
 * What the provider verifiers share: secrets turned into keys, constant-time HMAC checks, body
 * parsing after verification, and the limits on a revocation. Kept apart from verifier.ts, which
 * imports every provider, so that no module's top level runs against a half-loaded import.
 */
export const MAX_ACCOUNT_IDS = 1000;
export const accountIdSchema = z.string().min(1).max(256);
/** Delivery and event ids: visible ASCII, as every provider sends them. */
export const DELIVERY_ID = /^[\x21-\x7e]{1,256}$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body parsed as JSON and checked against `schema`; undefined when it is neither. */
export function parseBody<T>(rawBody: Buffer, schema: z.ZodType<T>): T | undefined {
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(rawBody));
  } catch {
    return undefined;
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

/** A revocation of the given ids, deduplicated; invalid when none are left or too many. */
export function revocation(deliveryId: string, event: string, candidates: readonly string[]): Verification {
  const accountIds = [...new Set(candidates)];
  if (accountIds.length === 0) return { kind: 'invalid', reason: 'no account ids in the revocation' };
  if (accountIds.length > MAX_ACCOUNT_IDS) return { kind: 'invalid', reason: 'too many account ids in one revocation' };
  if (!accountIds.every((id) => accountIdSchema.safeParse(id).success)) {
    return { kind: 'invalid', reason: 'account ids are 1 to 256 characters' };
  }
  return { kind: 'revoke', deliveryId, event, accountIds };
}

/** HMAC keys from secrets used as UTF-8 text (GitHub, Slack, plain generic secrets). */
export function utf8Keys(secrets: readonly string[]): Buffer[] {
  return requireSecrets(secrets).map((secret) => Buffer.from(secret, 'utf8'));
}

/** An empty key would let anyone sign, so neither an empty list nor an empty secret is accepted. */
export function requireSecrets(secrets: readonly string[]): readonly string[] {
  if (secrets.length === 0) throw new Error('an inbound webhook verifier needs at least one secret');
  if (secrets.some((secret) => secret.length === 0)) throw new Error('inbound webhook secrets must not be empty');
  return secrets;
}

const SHA256_HEX = /^[0-9a-f]{64}$/i;

/**
 * Whether a hex HMAC-SHA256 of `parts` under any key equals `presentedHex`. Every key is
 * compared in constant time, without stopping at the first match.
 */
export function hexHmacMatches(keys: readonly Buffer[], parts: readonly Buffer[], presentedHex: string): boolean {
  if (!SHA256_HEX.test(presentedHex)) return false;
  const presented = Buffer.from(presentedHex, 'hex');
  let matched = false;
  for (const key of keys) {
    const hmac = createHmac('sha256', key);
    for (const part of parts) hmac.update(part);
    if (timingSafeEqual(hmac.digest(), presented)) matched = true;
  }
  return matched;
}
