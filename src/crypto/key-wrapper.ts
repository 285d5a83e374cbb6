import { randomBytes } from 'node:crypto';
import { CredentialUnreadableError } from '../errors';
import { aesGcmOpen, aesGcmSeal, IV_BYTES, TAG_BYTES } from './aead';
import type { KeyringHolder } from './keyring-holder';

/**
 * Wraps and unwraps data keys (DEKs) with a key-encryption key (KEK). The local keyring is the
 * implementation today; Vault Transit or a cloud KMS fit the same shape, which is why the calls
 * are asynchronous. The wrapped form is opaque to callers: they store it next to the KEK id.
 */
export interface KeyWrapper {
  /** Id of the KEK that new data keys are wrapped under. */
  activeKekId(): string;
  wrap(kekId: string, dek: Buffer, aad: Buffer): Promise<Buffer>;
  /** Throws CredentialUnreadableError('unknown_kek' | 'tampered'). */
  unwrap(kekId: string, wrapped: Buffer, aad: Buffer): Promise<Buffer>;
}

/** Wrapped DEK layout for the local keyring: IV (12) ‖ ciphertext (32) ‖ tag (16). */
export const LOCAL_WRAPPED_BYTES = IV_BYTES + 32 + TAG_BYTES;

/**
 * Wraps with the keyring's keys; with no keyring loaded every call answers 503. A KEK id this
 * replica does not hold makes it re-read its keyring once (through `reread`, rate-limited by the
 * caller) before failing closed: another replica may have started using a key this one has not
 * loaded yet.
 */
export class LocalKeyWrapper implements KeyWrapper {
  constructor(
    private readonly holder: KeyringHolder,
    private readonly random: (n: number) => Buffer = randomBytes,
    private readonly reread: () => Promise<void> = async () => undefined,
  ) {}

  activeKekId(): string {
    return this.holder.sealingKekId();
  }

  async wrap(kekId: string, dek: Buffer, aad: Buffer): Promise<Buffer> {
    const kek = this.holder.require().key(kekId);
    if (!kek) throw new CredentialUnreadableError('unknown_kek');
    const iv = this.random(IV_BYTES);
    const { ciphertext, tag } = aesGcmSeal(kek, iv, dek, aad);
    return Buffer.concat([iv, ciphertext, tag]);
  }

  async unwrap(kekId: string, wrapped: Buffer, aad: Buffer): Promise<Buffer> {
    let kek = this.holder.require().key(kekId);
    if (!kek) {
      await this.reread();
      kek = this.holder.require().key(kekId);
    }
    if (!kek) throw new CredentialUnreadableError('unknown_kek');
    if (wrapped.length !== LOCAL_WRAPPED_BYTES) throw new CredentialUnreadableError('format');
    try {
      return aesGcmOpen(
        kek,
        wrapped.subarray(0, IV_BYTES),
        wrapped.subarray(IV_BYTES, wrapped.length - TAG_BYTES),
        wrapped.subarray(wrapped.length - TAG_BYTES),
        aad,
      );
    } catch {
      throw new CredentialUnreadableError('tampered');
    }
  }
}
