import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { z } from 'zod';

/**
 * The key-encryption keys (KEKs). JSON form: {"active":"k2","keys":{"k1":"<base64 32 bytes>",...}}.
 * `active` names the key new records are wrapped under; the others stay to open older records
 * until a rewrap has moved them (see DESIGN §6). Key material lives only in KeyObjects, which do
 * not print their bytes.
 */
export const KEK_ID = /^[A-Za-z0-9_-]{1,32}$/;
export const KEK_BYTES = 32;

const keyMaterial = z
  .string()
  .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64')
  .refine((value) => Buffer.from(value, 'base64').length === KEK_BYTES, `must decode to exactly ${KEK_BYTES} bytes`);

export const keyringSchema = z
  .strictObject({
    active: z.string().regex(KEK_ID, 'key ids match ^[A-Za-z0-9_-]{1,32}$'),
    keys: z
      .record(z.string().regex(KEK_ID, 'key ids match ^[A-Za-z0-9_-]{1,32}$'), keyMaterial)
      .refine((keys) => Object.keys(keys).length > 0, 'at least one key is required'),
  })
  .refine((ring) => ring.active in ring.keys, { message: 'the active key is not in keys', path: ['active'] });

export type KeyringJson = z.infer<typeof keyringSchema>;

/** A keyring that cannot be used; `field` is the path inside the keyring JSON, if any. */
export class KeyringError extends Error {
  constructor(
    readonly reason: string,
    readonly field?: string,
  ) {
    super(field ? `${field}: ${reason}` : reason);
  }
}

export class Keyring {
  private constructor(
    readonly activeId: string,
    private readonly keys: ReadonlyMap<string, KeyObject>,
  ) {}

  /** Parses and validates keyring JSON (text or already parsed). Errors never quote key material. */
  static parse(input: string | unknown): Keyring {
    let value: unknown = input;
    if (typeof input === 'string') {
      try {
        value = JSON.parse(input);
      } catch {
        throw new KeyringError('is not valid JSON');
      }
    }
    const parsed = keyringSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new KeyringError(issue?.message ?? 'invalid', issue?.path.length ? issue.path.join('.') : undefined);
    }
    const keys = new Map<string, KeyObject>();
    for (const [id, material] of Object.entries(parsed.data.keys)) {
      keys.set(id, createSecretKey(Buffer.from(material, 'base64')));
    }
    return new Keyring(parsed.data.active, keys);
  }

  /** A new keyring with one random key, as JSON text (for dev mode and `token-vault keygen`). */
  static generateJson(id: string, random: (n: number) => Buffer = randomBytes): string {
    const ring: KeyringJson = { active: id, keys: { [id]: random(KEK_BYTES).toString('base64') } };
    return JSON.stringify(ring, null, 2) + '\n';
  }

  has(id: string): boolean {
    return this.keys.has(id);
  }

  key(id: string): KeyObject | undefined {
    return this.keys.get(id);
  }

  ids(): string[] {
    return [...this.keys.keys()];
  }
}
