import { randomBytes } from 'node:crypto';
import { CredentialUnreadableError } from '../errors';
import { aesGcmOpen, aesGcmSeal, IV_BYTES, TAG_BYTES } from './aead';
import type { KeyWrapper } from './key-wrapper';
import { KEK_ID } from './keyring';

/**
 * Sealed record format, version 1 (all integers big-endian):
 *
 *   offset   size  field
 *   0        1     format version = 1 (first, so a rolling upgrade can read both formats)
 *   1        1     k = length of the KEK id (1..32)
 *   2        k     KEK id, ASCII
 *   2+k      2     w = length of the wrapped DEK
 *   4+k      w     wrapped DEK, opaque here (local keyring: IV 12 ‖ ciphertext 32 ‖ tag 16)
 *   4+k+w    12    record IV
 *   16+k+w   n     record ciphertext (AES-256-GCM under the DEK)
 *   end-16   16    record tag
 *
 * AAD binds each ciphertext to its place; every field is length-prefixed because user ids may
 * contain the characters a separator would use:
 *   record:      version ‖ "record" ‖ user ‖ provider
 *   wrapped DEK: version ‖ "dek" ‖ KEK id ‖ user ‖ provider
 * The KEK id is only in the wrap's AAD, so re-wrapping under another KEK leaves the record IV and
 * ciphertext byte-identical. A record copied to another user or provider fails to open.
 */
export const FORMAT_VERSION = 1;
const DEK_BYTES = 32;
const MIN_BYTES = 4 + 1 + 1 + IV_BYTES + TAG_BYTES;

export interface RecordContext {
  user: string;
  provider: string;
}

export interface EnvelopeParts {
  version: number;
  kekId: string;
  wrappedDek: Buffer;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

export function recordAad(ctx: RecordContext): Buffer {
  return lengthPrefixed(FORMAT_VERSION, ['record', ctx.user, ctx.provider]);
}

export function dekAad(kekId: string, ctx: RecordContext): Buffer {
  return lengthPrefixed(FORMAT_VERSION, ['dek', kekId, ctx.user, ctx.provider]);
}

function lengthPrefixed(version: number, fields: string[]): Buffer {
  const parts: Buffer[] = [Buffer.of(version)];
  for (const field of fields) {
    const bytes = Buffer.from(field, 'utf8');
    const length = Buffer.alloc(2);
    length.writeUInt16BE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

export function encodeEnvelope(parts: EnvelopeParts): Buffer {
  const kekId = Buffer.from(parts.kekId, 'ascii');
  const header = Buffer.alloc(4 + kekId.length);
  header.writeUInt8(parts.version, 0);
  header.writeUInt8(kekId.length, 1);
  kekId.copy(header, 2);
  header.writeUInt16BE(parts.wrappedDek.length, 2 + kekId.length);
  return Buffer.concat([header, parts.wrappedDek, parts.iv, parts.ciphertext, parts.tag]);
}

/** Splits a sealed record into its parts; throws CredentialUnreadableError('format'). */
export function decodeEnvelope(blob: Buffer): EnvelopeParts {
  if (blob.length < MIN_BYTES) throw new CredentialUnreadableError('format');
  const version = blob.readUInt8(0);
  if (version !== FORMAT_VERSION) throw new CredentialUnreadableError('format');
  const kekLength = blob.readUInt8(1);
  const wrapStart = 4 + kekLength;
  if (kekLength === 0 || blob.length < wrapStart + IV_BYTES + TAG_BYTES) throw new CredentialUnreadableError('format');
  // latin1, not ascii: ascii decoding drops the high bit, so a flipped bit would still name the key.
  const kekId = blob.toString('latin1', 2, 2 + kekLength);
  if (!KEK_ID.test(kekId)) throw new CredentialUnreadableError('format');
  const wrapLength = blob.readUInt16BE(2 + kekLength);
  const ivStart = wrapStart + wrapLength;
  if (blob.length < ivStart + IV_BYTES + TAG_BYTES) throw new CredentialUnreadableError('format');
  return {
    version,
    kekId,
    wrappedDek: blob.subarray(wrapStart, ivStart),
    iv: blob.subarray(ivStart, ivStart + IV_BYTES),
    ciphertext: blob.subarray(ivStart + IV_BYTES, blob.length - TAG_BYTES),
    tag: blob.subarray(blob.length - TAG_BYTES),
  };
}

/** Envelope encryption of one record: a fresh DEK and IV for every seal. */
export class Envelope {
  constructor(
    private readonly wrapper: KeyWrapper,
    private readonly random: (n: number) => Buffer = randomBytes,
  ) {}

  async seal(plaintext: Buffer, ctx: RecordContext): Promise<Buffer> {
    const kekId = this.wrapper.activeKekId();
    const dek = this.random(DEK_BYTES);
    const iv = this.random(IV_BYTES);
    try {
      const { ciphertext, tag } = aesGcmSeal(dek, iv, plaintext, recordAad(ctx));
      const wrappedDek = await this.wrapper.wrap(kekId, dek, dekAad(kekId, ctx));
      return encodeEnvelope({ version: FORMAT_VERSION, kekId, wrappedDek, iv, ciphertext, tag });
    } finally {
      dek.fill(0);
    }
  }

  /** Throws CredentialUnreadableError: never returns bytes that did not authenticate. */
  async open(blob: Buffer, ctx: RecordContext): Promise<Buffer> {
    const parts = decodeEnvelope(blob);
    const dek = await this.wrapper.unwrap(parts.kekId, parts.wrappedDek, dekAad(parts.kekId, ctx));
    try {
      return aesGcmOpen(dek, parts.iv, parts.ciphertext, parts.tag, recordAad(ctx));
    } catch {
      throw new CredentialUnreadableError('tampered');
    } finally {
      dek.fill(0);
    }
  }

  /**
   * Re-wraps the record's data key under `kekId`: only the KEK id and the wrapped DEK change; the
   * record IV, ciphertext and tag stay byte-identical. Throws CredentialUnreadableError.
   */
  async rewrap(blob: Buffer, ctx: RecordContext, kekId: string): Promise<Buffer> {
    const parts = decodeEnvelope(blob);
    const dek = await this.wrapper.unwrap(parts.kekId, parts.wrappedDek, dekAad(parts.kekId, ctx));
    try {
      const wrappedDek = await this.wrapper.wrap(kekId, dek, dekAad(kekId, ctx));
      return encodeEnvelope({ ...parts, kekId, wrappedDek });
    } finally {
      dek.fill(0);
    }
  }
}
