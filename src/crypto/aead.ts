import { createCipheriv, createDecipheriv, type KeyObject } from 'node:crypto';

/** AES-256-GCM with the only parameters this service uses: 12-byte IV, 16-byte tag. */
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
const ALGORITHM = 'aes-256-gcm';

export interface Sealed {
  ciphertext: Buffer;
  tag: Buffer;
}

export function aesGcmSeal(key: KeyObject | Buffer, iv: Buffer, plaintext: Buffer, aad: Buffer): Sealed {
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/**
 * Throws when the tag does not verify. `authTagLength` is always set: without it Node accepts a
 * truncated tag (as short as 4 bytes), which makes forgery cheap.
 */
export function aesGcmOpen(key: KeyObject | Buffer, iv: Buffer, ciphertext: Buffer, tag: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
}
