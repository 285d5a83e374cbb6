import { randomBytes } from 'node:crypto';
import { Keyring, KeyringError } from '../../../src/crypto/keyring';

const material = () => randomBytes(32).toString('base64');

/** Parses and returns the KeyringError; fails the test if parsing succeeded. */
function parseError(input: unknown): KeyringError {
  try {
    Keyring.parse(input);
  } catch (err) {
    expect(err).toBeInstanceOf(KeyringError);
    return err as KeyringError;
  }
  throw new Error('Keyring.parse accepted an invalid keyring');
}

describe('Keyring.parse accepts', () => {
  test('keyring JSON text with the active key and an older one', () => {
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const ring = Keyring.parse(JSON.stringify({ active: 'k2', keys: { k1: k1.toString('base64'), k2: k2.toString('base64') } }));
    expect(ring.activeId).toBe('k2');
    expect(ring.ids().sort()).toEqual(['k1', 'k2']);
    expect(ring.has('k1')).toBe(true);
    expect(ring.has('k3')).toBe(false);
    expect(ring.key('k1')?.export()).toEqual(k1);
    expect(ring.key('k2')?.export()).toEqual(k2);
    expect(ring.key('k3')).toBeUndefined();
  });

  test('an already parsed object', () => {
    const ring = Keyring.parse({ active: 'k1', keys: { k1: material() } });
    expect(ring.activeId).toBe('k1');
    expect(ring.key('k1')?.symmetricKeySize).toBe(32);
  });

  test('key ids using every allowed character class, up to 32 characters', () => {
    const long = 'A'.repeat(32);
    const ring = Keyring.parse({ active: 'key_2026-11', keys: { 'key_2026-11': material(), [long]: material(), Z9: material() } });
    expect(ring.ids()).toEqual(expect.arrayContaining(['key_2026-11', long, 'Z9']));
  });

  test('key material without base64 padding', () => {
    const unpadded = randomBytes(32).toString('base64').replace(/=+$/, '');
    expect(Keyring.parse({ active: 'k1', keys: { k1: unpadded } }).activeId).toBe('k1');
  });
});

describe('Keyring.parse rejects', () => {
  test('text that is not JSON', () => {
    expect(parseError('{"active": "k1", "keys": {').message).toMatch(/not valid JSON/);
  });

  test('JSON that is not an object', () => {
    expect(parseError('"k1"')).toBeInstanceOf(KeyringError);
    expect(parseError('null')).toBeInstanceOf(KeyringError);
  });

  test('an active key that is not in keys', () => {
    const k1 = material();
    const err = parseError({ active: 'k2', keys: { k1 } });
    expect(err.message).toMatch(/active/);
    expect(err.message).not.toContain(k1);
  });

  test('an empty keys object', () => {
    expect(parseError({ active: 'k1', keys: {} })).toBeInstanceOf(KeyringError);
  });

  test('missing active or keys', () => {
    expect(parseError({ keys: { k1: material() } }).message).toMatch(/active/);
    expect(parseError({ active: 'k1' }).message).toMatch(/keys/);
  });

  test('unknown top-level fields', () => {
    const k1 = material();
    const err = parseError({ active: 'k1', keys: { k1 }, activ: 'k1' });
    expect(err.message).not.toContain(k1);
  });

  test.each([
    ['a space', 'key 1'],
    ['a dot', 'k.1'],
    ['a colon', 'k:1'],
    ['33 characters', 'a'.repeat(33)],
    ['an empty id', ''],
    ['non-ASCII letters', 'clé'],
  ])('a key id with %s', (_label, id) => {
    const k = material();
    const err = parseError({ active: id, keys: { [id]: k } });
    expect(err.message).toMatch(/\^\[A-Za-z0-9_-\]\{1,32\}\$/);
    expect(err.message).not.toContain(k);
  });

  test('a non-active key with an invalid id', () => {
    const k = material();
    const err = parseError({ active: 'k1', keys: { k1: material(), 'bad id': k } });
    expect(err.message).not.toContain(k);
  });

  test.each([16, 31, 33, 64])('key material of %i bytes, without quoting the material', (bytes) => {
    const k = randomBytes(bytes).toString('base64');
    const err = parseError({ active: 'k1', keys: { k1: k } });
    expect(err.message).toMatch(/32 bytes/);
    expect(err.message).toContain('keys.k1');
    expect(err.message).not.toContain(k);
    expect(err.message).not.toContain(k.slice(0, 12));
  });

  test.each([
    ['URL-safe alphabet', () => randomBytes(32).toString('base64url') + '-_'],
    ['spaces inside', () => material().replace(/^(.{10})/, '$1 ')],
    ['hex', () => randomBytes(32).toString('hex') + '!'],
    ['too much padding', () => material().replace(/=*$/, '===')],
  ])('key material that is not base64 (%s), without quoting the material', (_label, make) => {
    const k = make();
    const err = parseError({ active: 'k1', keys: { k1: k } });
    expect(err.message).toContain('keys.k1');
    expect(err.message).not.toContain(k);
    expect(err.message).not.toContain(k.slice(0, 12));
  });

  test('key material that is not a string', () => {
    expect(parseError({ active: 'k1', keys: { k1: 12345 } }).message).toContain('keys.k1');
  });

  test('the error for a broken keyring text never quotes the text', () => {
    const k1 = material();
    const text = `{"active":"k1","keys":{"k1":"${k1}"`;
    expect(parseError(text).message).not.toContain(k1);
  });
});

describe('Keyring.generateJson', () => {
  test('produces JSON that parses to a keyring with one 32-byte active key', () => {
    const json = Keyring.generateJson('dev-1');
    const ring = Keyring.parse(json);
    expect(ring.activeId).toBe('dev-1');
    expect(ring.ids()).toEqual(['dev-1']);
    expect(ring.key('dev-1')?.symmetricKeySize).toBe(32);
  });

  test('two generated keyrings hold different keys', () => {
    const a = Keyring.parse(Keyring.generateJson('k1')).key('k1')?.export();
    const b = Keyring.parse(Keyring.generateJson('k1')).key('k1')?.export();
    expect(a?.equals(b!)).toBe(false);
  });

  test('uses the injected random source for the key material', () => {
    const requested: number[] = [];
    const json = Keyring.generateJson('k7', (n) => {
      requested.push(n);
      return Buffer.alloc(n, 0xab);
    });
    expect(requested).toEqual([32]);
    expect(JSON.parse(json)).toEqual({ active: 'k7', keys: { k7: Buffer.alloc(32, 0xab).toString('base64') } });
    expect(Keyring.parse(json).key('k7')?.export()).toEqual(Buffer.alloc(32, 0xab));
  });
});
