import { aesGcmOpen, aesGcmSeal } from '../../../src/crypto/aead';

/**
 * Known-answer vectors for AES-256-GCM with a 96-bit IV and a 128-bit tag, from
 * D. McGrew and J. Viega, "The Galois/Counter Mode of Operation (GCM)", revised submission to
 * NIST (2005), Appendix B, Test Cases 13, 14 and 16. The same vectors appear in NIST's CAVP
 * set gcmEncryptExtIV256.rsp.
 */
interface Vector {
  name: string;
  key: string;
  iv: string;
  plaintext: string;
  aad: string;
  ciphertext: string;
  tag: string;
}

const hex = (value: string): Buffer => Buffer.from(value, 'hex');

const VECTORS: Vector[] = [
  {
    name: 'Test Case 13 (zero key, zero IV, empty plaintext)',
    key: '00'.repeat(32),
    iv: '00'.repeat(12),
    plaintext: '',
    aad: '',
    ciphertext: '',
    tag: '530f8afbc74536b9a963b4f1c4cb738b',
  },
  {
    name: 'Test Case 14 (zero key, zero IV, one zero block)',
    key: '00'.repeat(32),
    iv: '00'.repeat(12),
    plaintext: '00'.repeat(16),
    aad: '',
    ciphertext: 'cea7403d4d606b6e074ec5d3baf39d18',
    tag: 'd0d1c8a799996bf0265b98b5d48ab919',
  },
  {
    name: 'Test Case 16 (60-byte plaintext, 20-byte AAD)',
    key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308',
    iv: 'cafebabefacedbaddecaf888',
    plaintext:
      'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
    aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
    ciphertext:
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662',
    tag: '76fc6ece0f4e1768cddf8853bb2d551b',
  },
];

describe.each(VECTORS)('GCM spec $name', (vector) => {
  test('sealing gives the published ciphertext and tag', () => {
    const sealed = aesGcmSeal(hex(vector.key), hex(vector.iv), hex(vector.plaintext), hex(vector.aad));
    expect(sealed.ciphertext.toString('hex')).toBe(vector.ciphertext);
    expect(sealed.tag.toString('hex')).toBe(vector.tag);
  });

  test('opening the published ciphertext and tag gives the plaintext', () => {
    const opened = aesGcmOpen(hex(vector.key), hex(vector.iv), hex(vector.ciphertext), hex(vector.tag), hex(vector.aad));
    expect(opened.toString('hex')).toBe(vector.plaintext);
  });

  test.each([15, 12, 4])('opening with the tag truncated to %i bytes throws', (length) => {
    const truncated = hex(vector.tag).subarray(0, length);
    expect(() => aesGcmOpen(hex(vector.key), hex(vector.iv), hex(vector.ciphertext), truncated, hex(vector.aad))).toThrow();
  });
});

describe('aesGcmOpen fails closed', () => {
  const vector = VECTORS[2]!;
  const open = (over: Partial<Record<'key' | 'iv' | 'ciphertext' | 'tag' | 'aad', Buffer>>) =>
    aesGcmOpen(
      over.key ?? hex(vector.key),
      over.iv ?? hex(vector.iv),
      over.ciphertext ?? hex(vector.ciphertext),
      over.tag ?? hex(vector.tag),
      over.aad ?? hex(vector.aad),
    );
  const flipped = (value: string, index: number): Buffer => {
    const bytes = hex(value);
    bytes[index]! ^= 0x01;
    return bytes;
  };

  test('the untouched Test Case 16 inputs open (control for the cases below)', () => {
    expect(open({}).toString('hex')).toBe(vector.plaintext);
  });

  test('a flipped ciphertext bit throws', () => {
    expect(() => open({ ciphertext: flipped(vector.ciphertext, 10) })).toThrow();
  });

  test('a flipped tag bit throws', () => {
    expect(() => open({ tag: flipped(vector.tag, 15) })).toThrow();
  });

  test('different AAD throws', () => {
    expect(() => open({ aad: flipped(vector.aad, 0) })).toThrow();
    expect(() => open({ aad: Buffer.alloc(0) })).toThrow();
  });

  test('a different key or IV throws', () => {
    expect(() => open({ key: flipped(vector.key, 31) })).toThrow();
    expect(() => open({ iv: flipped(vector.iv, 0) })).toThrow();
  });

  test('an over-long tag throws', () => {
    expect(() => open({ tag: Buffer.concat([hex(vector.tag), Buffer.of(0)]) })).toThrow();
  });
});
