import { createCipheriv, randomBytes } from 'node:crypto';
import { aesGcmOpen } from '../../../src/crypto/aead';
import { decodeEnvelope, dekAad, Envelope, FORMAT_VERSION, recordAad, type RecordContext } from '../../../src/crypto/envelope';
import { LocalKeyWrapper, LOCAL_WRAPPED_BYTES } from '../../../src/crypto/key-wrapper';
import { KeyringHolder } from '../../../src/crypto/keyring-holder';
import { Keyring } from '../../../src/crypto/keyring';
import { CredentialUnreadableError, UnavailableError, type UnreadableReason } from '../../../src/errors';

const K1 = randomBytes(32);
const K2 = randomBytes(32);
const ringJson = (active: string, keys: Record<string, Buffer>) =>
  JSON.stringify({ active, keys: Object.fromEntries(Object.entries(keys).map(([id, key]) => [id, key.toString('base64')])) });
const ringK1 = Keyring.parse(ringJson('k1', { k1: K1 }));
const ringK1K2 = Keyring.parse(ringJson('k2', { k1: K1, k2: K2 }));
const ringK2Only = Keyring.parse(ringJson('k2', { k2: K2 }));

const ctx: RecordContext = { user: 'u42', provider: 'github' };
const plaintext = Buffer.from(JSON.stringify({ type: 'oauth2', access_token: 'at-secret', refresh_token: 'rt-secret' }));

function envelopeFor(ring: Keyring | undefined): Envelope {
  return new Envelope(new LocalKeyWrapper(new KeyringHolder(ring)));
}

/** Runs `open` and returns the CredentialUnreadableError's reason; fails the test if it returned data. */
async function unreadableReason(open: () => Promise<Buffer>): Promise<UnreadableReason> {
  let result: Buffer | undefined;
  try {
    result = await open();
  } catch (err) {
    expect(err).toBeInstanceOf(CredentialUnreadableError);
    return (err as CredentialUnreadableError).reason;
  }
  throw new Error(`open returned ${result.length} bytes instead of failing`);
}

describe('round trip', () => {
  test('a sealed credential opens to the same bytes for the same user and provider', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    expect(await envelope.open(blob, ctx)).toEqual(plaintext);
  });

  test('the sealed blob does not contain the plaintext', async () => {
    const blob = await envelopeFor(ringK1).seal(plaintext, ctx);
    expect(blob.includes(Buffer.from('at-secret'))).toBe(false);
    expect(blob.includes(Buffer.from('rt-secret'))).toBe(false);
  });

  test('an empty plaintext round-trips', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(Buffer.alloc(0), ctx);
    expect(await envelope.open(blob, ctx)).toEqual(Buffer.alloc(0));
  });

  test('users and providers with separator characters round-trip', async () => {
    const envelope = envelopeFor(ringK1);
    const odd: RecordContext = { user: 'tenant|7:user:42 é', provider: 'git-hub_2' };
    const blob = await envelope.seal(plaintext, odd);
    expect(await envelope.open(blob, odd)).toEqual(plaintext);
  });
});

describe('a fresh data key and IV for every seal', () => {
  test('sealing the same plaintext twice gives different IVs, wrapped DEKs, ciphertexts and DEKs', async () => {
    const envelope = envelopeFor(ringK1);
    const first = decodeEnvelope(await envelope.seal(plaintext, ctx));
    const second = decodeEnvelope(await envelope.seal(plaintext, ctx));

    expect(first.iv.equals(second.iv)).toBe(false);
    expect(first.wrappedDek.equals(second.wrappedDek)).toBe(false);
    expect(first.ciphertext.equals(second.ciphertext)).toBe(false);
    expect(first.tag.equals(second.tag)).toBe(false);

    // Unwrap both DEKs with the keyring's KEK: they are different keys, and each opens its record.
    const wrapper = new LocalKeyWrapper(new KeyringHolder(ringK1));
    const dek1 = await wrapper.unwrap('k1', first.wrappedDek, dekAad('k1', ctx));
    const dek2 = await wrapper.unwrap('k1', second.wrappedDek, dekAad('k1', ctx));
    expect(dek1).toHaveLength(32);
    expect(dek2).toHaveLength(32);
    expect(dek1.equals(dek2)).toBe(false);
    expect(aesGcmOpen(dek1, first.iv, first.ciphertext, first.tag, recordAad(ctx))).toEqual(plaintext);
    expect(aesGcmOpen(dek2, second.iv, second.ciphertext, second.tag, recordAad(ctx))).toEqual(plaintext);
  });
});

describe('byte layout (format version 1)', () => {
  test('version byte, KEK id, wrapped-DEK length, wrapped DEK, IV 12, ciphertext, tag 16 at the end', async () => {
    const blob = await envelopeFor(ringK1).seal(plaintext, ctx);
    const kekId = Buffer.from('k1', 'ascii');

    expect(blob[0]).toBe(1);
    expect(FORMAT_VERSION).toBe(1);
    expect(blob[1]).toBe(kekId.length);
    expect(blob.subarray(2, 2 + kekId.length)).toEqual(kekId);
    const wrapLength = blob.readUInt16BE(2 + kekId.length);
    expect(wrapLength).toBe(LOCAL_WRAPPED_BYTES);
    expect(LOCAL_WRAPPED_BYTES).toBe(12 + 32 + 16);
    // GCM adds no padding: the ciphertext is as long as the plaintext.
    expect(blob).toHaveLength(1 + 1 + kekId.length + 2 + wrapLength + 12 + plaintext.length + 16);

    const parts = decodeEnvelope(blob);
    const ivStart = 4 + kekId.length + wrapLength;
    expect(parts.version).toBe(1);
    expect(parts.kekId).toBe('k1');
    expect(parts.wrappedDek).toEqual(blob.subarray(4 + kekId.length, ivStart));
    expect(parts.iv).toEqual(blob.subarray(ivStart, ivStart + 12));
    expect(parts.ciphertext).toEqual(blob.subarray(ivStart + 12, blob.length - 16));
    expect(parts.tag).toEqual(blob.subarray(blob.length - 16));
  });

  test('an injected random source is honoured: the blob equals one built independently from the documented format', async () => {
    // Every call gets a buffer filled with the next byte value: DEK = 0x01.., record IV = 0x02.., wrap IV = 0x03..
    const requested: number[] = [];
    let next = 1;
    const random = (n: number) => {
      requested.push(n);
      return Buffer.alloc(n, next++);
    };
    const envelope = new Envelope(new LocalKeyWrapper(new KeyringHolder(ringK1), random), random);
    const blob = await envelope.seal(plaintext, ctx);
    expect(requested).toEqual([32, 12, 12]);

    const field = (value: string) => {
      const bytes = Buffer.from(value, 'utf8');
      const length = Buffer.alloc(2);
      length.writeUInt16BE(bytes.length);
      return Buffer.concat([length, bytes]);
    };
    const gcm = (key: Buffer, iv: Buffer, data: Buffer, aad: Buffer) => {
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
      cipher.setAAD(aad);
      const ciphertext = Buffer.concat([cipher.update(data), cipher.final()]);
      return Buffer.concat([ciphertext, cipher.getAuthTag()]);
    };
    const dek = Buffer.alloc(32, 1);
    const recordIv = Buffer.alloc(12, 2);
    const wrapIv = Buffer.alloc(12, 3);
    const expectedRecordAad = Buffer.concat([Buffer.of(1), field('record'), field('u42'), field('github')]);
    const expectedDekAad = Buffer.concat([Buffer.of(1), field('dek'), field('k1'), field('u42'), field('github')]);
    expect(recordAad(ctx)).toEqual(expectedRecordAad);
    expect(dekAad('k1', ctx)).toEqual(expectedDekAad);

    const wrapped = Buffer.concat([wrapIv, gcm(K1, wrapIv, dek, expectedDekAad)]);
    const expected = Buffer.concat([
      Buffer.of(1, 2),
      Buffer.from('k1', 'ascii'),
      Buffer.of(0, wrapped.length),
      wrapped,
      recordIv,
      gcm(dek, recordIv, plaintext, expectedRecordAad),
    ]);
    expect(blob.toString('hex')).toBe(expected.toString('hex'));
    expect(await envelope.open(blob, ctx)).toEqual(plaintext);
  });
});

describe('tampering fails closed with CredentialUnreadableError', () => {
  const acceptable: UnreadableReason[] = ['format', 'tampered', 'unknown_kek'];

  test('inverting any single byte of a sealed blob never opens', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    const opened: number[] = [];
    for (let i = 0; i < blob.length; i++) {
      const tampered = Buffer.from(blob);
      tampered[i]! ^= 0xff;
      try {
        await envelope.open(tampered, ctx);
        opened.push(i);
      } catch (err) {
        expect(err).toBeInstanceOf(CredentialUnreadableError);
        expect(acceptable).toContain((err as CredentialUnreadableError).reason);
      }
    }
    expect(opened).toEqual([]);
  });

  test('flipping any single bit of a sealed blob never opens', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    const opened: string[] = [];
    for (let i = 0; i < blob.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = Buffer.from(blob);
        tampered[i]! ^= 1 << bit;
        try {
          await envelope.open(tampered, ctx);
          opened.push(`byte ${i} bit ${bit}`);
        } catch (err) {
          expect(err).toBeInstanceOf(CredentialUnreadableError);
          expect(acceptable).toContain((err as CredentialUnreadableError).reason);
        }
      }
    }
    expect(opened).toEqual([]);
  });

  test('a KEK id byte with its high bit set is not read as the 7-bit id', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    const tampered = Buffer.from(blob);
    tampered[2]! |= 0x80; // 'k' (0x6b) becomes 0xeb, which is not a valid KEK id character
    expect(['format', 'unknown_kek']).toContain(await unreadableReason(() => envelope.open(tampered, ctx)));
  });

  test('a blob truncated below the minimum size is a format error', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    for (const length of [0, 1, 4, 33]) {
      expect(await unreadableReason(() => envelope.open(blob.subarray(0, length), ctx))).toBe('format');
    }
  });

  test('a blob cut anywhere never opens', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    for (let length = 0; length < blob.length; length++) {
      expect(['format', 'tampered']).toContain(await unreadableReason(() => envelope.open(blob.subarray(0, length), ctx)));
    }
  });

  test('a truncated tag (last 1, 4 or 15 bytes removed) is refused as tampered', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    for (const cut of [1, 4, 15]) {
      expect(await unreadableReason(() => envelope.open(blob.subarray(0, blob.length - cut), ctx))).toBe('tampered');
    }
  });

  test('a record opened as another user is refused as tampered', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    expect(await unreadableReason(() => envelope.open(blob, { user: 'u43', provider: 'github' }))).toBe('tampered');
  });

  test('a record opened as another provider is refused as tampered', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    expect(await unreadableReason(() => envelope.open(blob, { user: 'u42', provider: 'google' }))).toBe('tampered');
  });

  test('moving characters between user and provider changes the AAD (fields are length-prefixed)', async () => {
    const envelope = envelopeFor(ringK1);
    const a: RecordContext = { user: 'a|b', provider: 'c' };
    const b: RecordContext = { user: 'a', provider: 'b|c' };
    expect(recordAad(a).equals(recordAad(b))).toBe(false);
    expect(dekAad('k1', a).equals(dekAad('k1', b))).toBe(false);
    const blob = await envelope.seal(plaintext, a);
    expect(await unreadableReason(() => envelope.open(blob, b))).toBe('tampered');
  });

  test('a record whose ciphertext is swapped in from another record of the same user is refused', async () => {
    const envelope = envelopeFor(ringK1);
    const first = await envelope.seal(plaintext, ctx);
    const second = await envelope.seal(Buffer.from('{"other":true}'), ctx);
    const head = 4 + 2 + LOCAL_WRAPPED_BYTES;
    const spliced = Buffer.concat([first.subarray(0, head), second.subarray(head)]);
    expect(await unreadableReason(() => envelope.open(spliced, ctx))).toBe('tampered');
  });

  test('a keyring without the record\'s KEK id answers unknown_kek', async () => {
    const blob = await envelopeFor(ringK1).seal(plaintext, ctx);
    expect(await unreadableReason(() => envelopeFor(ringK2Only).open(blob, ctx))).toBe('unknown_kek');
  });

  test('a keyring with the same KEK id but other key material answers tampered', async () => {
    const blob = await envelopeFor(ringK1).seal(plaintext, ctx);
    const impostor = Keyring.parse(ringJson('k1', { k1: randomBytes(32) }));
    expect(await unreadableReason(() => envelopeFor(impostor).open(blob, ctx))).toBe('tampered');
  });

  test.each([0, 2, 255])('an unsupported format version byte %i is a format error', async (version) => {
    const envelope = envelopeFor(ringK1);
    const blob = Buffer.from(await envelope.seal(plaintext, ctx));
    blob[0] = version;
    expect(await unreadableReason(() => envelope.open(blob, ctx))).toBe('format');
  });

  test('a wrapped DEK of the wrong length is a format error', async () => {
    const envelope = envelopeFor(ringK1);
    const blob = await envelope.seal(plaintext, ctx);
    const parts = decodeEnvelope(blob);
    const short = parts.wrappedDek.subarray(0, LOCAL_WRAPPED_BYTES - 1);
    const header = Buffer.of(1, 2, 0x6b, 0x31, 0, short.length);
    const rebuilt = Buffer.concat([header, short, parts.iv, parts.ciphertext, parts.tag]);
    expect(await unreadableReason(() => envelope.open(rebuilt, ctx))).toBe('format');
  });
});

describe('key rotation', () => {
  test('a record sealed under k1 opens with the keyring {active: k2, keys: {k1, k2}}', async () => {
    const blob = await envelopeFor(ringK1).seal(plaintext, ctx);
    expect(await envelopeFor(ringK1K2).open(blob, ctx)).toEqual(plaintext);
  });

  test('new records are sealed under the active key k2 and do not open with a keyring holding only k1', async () => {
    const blob = await envelopeFor(ringK1K2).seal(plaintext, ctx);
    expect(decodeEnvelope(blob).kekId).toBe('k2');
    expect(await envelopeFor(ringK2Only).open(blob, ctx)).toEqual(plaintext);
    expect(await unreadableReason(() => envelopeFor(ringK1).open(blob, ctx))).toBe('unknown_kek');
  });
});

describe('without a keyring', () => {
  test('sealing answers unavailable instead of writing an unprotected record', async () => {
    await expect(envelopeFor(undefined).seal(plaintext, ctx)).rejects.toBeInstanceOf(UnavailableError);
  });

  test('opening answers unavailable', async () => {
    const blob = await envelopeFor(ringK1).seal(plaintext, ctx);
    await expect(envelopeFor(undefined).open(blob, ctx)).rejects.toBeInstanceOf(UnavailableError);
  });
});
