import { createHash } from 'node:crypto';
import { CallerRegistry } from '../../../src/auth/callers';
import type { CallerConfig } from '../../../src/config/schema';
import { describeSubject, DistinguishedName, DistinguishedNameError } from '../../../src/tls/distinguished-name';

/**
 * certSubject matching: the subject of a verified client certificate, as
 * tls.TLSSocket#getPeerCertificate() hands it over (a null-prototype object, a repeated
 * attribute as an array), against the configured DN.
 */

/** What getPeerCertificate().subject looks like. */
function subject(entries: Record<string, string | string[]>): Record<string, string | string[]> {
  return Object.assign(Object.create(null) as Record<string, string | string[]>, entries);
}

const dn = (text: string) => DistinguishedName.parse(text);

describe('DistinguishedName.matches', () => {
  test('the certificate subject must hold exactly the configured attributes and values, in any order', () => {
    expect(dn('CN=billing').matches(subject({ CN: 'billing' }))).toBe(true);
    expect(dn('CN=billing,O=Acme').matches(subject({ O: 'Acme', CN: 'billing' }))).toBe(true);
    expect(dn('O=Acme, CN=billing').matches(subject({ CN: 'billing', O: 'Acme' }))).toBe(true);
  });

  test('an extra attribute, a missing one or another value is another identity', () => {
    expect(dn('CN=billing').matches(subject({ CN: 'billing', O: 'Acme' }))).toBe(false);
    expect(dn('CN=billing,O=Acme').matches(subject({ CN: 'billing' }))).toBe(false);
    expect(dn('CN=billing').matches(subject({ CN: 'billing2' }))).toBe(false);
    expect(dn('CN=billing').matches(subject({ CN: 'Billing' }))).toBe(false);
    expect(dn('CN=billing').matches(subject({ CN: 'billing ' }))).toBe(false);
    expect(dn('CN=billing').matches(subject({ O: 'billing' }))).toBe(false);
    expect(dn('CN=billing').matches(subject({}))).toBe(false);
  });

  test('a repeated attribute in the certificate (an array) never matches, not even one of its values', () => {
    expect(dn('CN=billing,OU=a').matches(subject({ CN: 'billing', OU: ['a', 'b'] }))).toBe(false);
    expect(dn('CN=billing,OU=a').matches(subject({ CN: 'billing', OU: ['a', 'a'] }))).toBe(false);
  });

  test('attribute types compare without case; two spellings of one type in a subject do not match', () => {
    expect(dn('cn=billing,o=Acme').matches(subject({ CN: 'billing', O: 'Acme' }))).toBe(true);
    expect(dn('emailaddress=ops@example.com').matches(subject({ emailAddress: 'ops@example.com' }))).toBe(true);
    // Never produced by Node, but a subject object with CN twice must not satisfy CN=x,O=y.
    expect(dn('CN=x,O=y').matches(subject({ CN: 'x', cn: 'x' }))).toBe(false);
  });

  test('values with escaped specials, hex escapes and UTF-8 compare as the certificate carries them', () => {
    expect(dn('CN=bill\\,ing\\+x').matches(subject({ CN: 'bill,ing+x' }))).toBe(true);
    expect(dn('CN=caf\\C3\\A9').matches(subject({ CN: 'café' }))).toBe(true);
    expect(dn('CN=café').matches(subject({ CN: 'café' }))).toBe(true);
    expect(dn('CN=\\ padded\\ ').matches(subject({ CN: ' padded ' }))).toBe(true);
    expect(dn('CN=  trimmed  ').matches(subject({ CN: 'trimmed' }))).toBe(true);
    expect(dn('1.2.3.4=x').matches(subject({ '1.2.3.4': 'x' }))).toBe(true);
  });

  test('anything that is not a subject object matches nothing', () => {
    for (const value of [undefined, null, 'CN=billing', 42, ['billing']]) expect(dn('CN=billing').matches(value)).toBe(false);
  });
});

describe('DistinguishedName.parse', () => {
  test.each([
    ['', /is empty|expected TYPE=value/],
    ['billing', /expected TYPE=value/],
    ['CN=', /empty value/],
    ['CN=a,', /ends with a comma/],
    ['CN=a,,O=b', /not an attribute type/],
    ['CM=billing', /unknown attribute type "CM"/],
    ['CN=a+O=b', /multi-valued RDNs/],
    ['CN=a,CN=b', /CN appears twice/],
    ['CN=a,cn=b', /CN appears twice/],
    ['CN=#0403616263', /#-hex/],
    ['CN=a"b', /must be escaped/],
    ['CN=a;O=b', /must be escaped/],
    ['CN=a\\q', /escapes nothing/],
    ['CN=\\ff', /not valid UTF-8/],
  ])('refuses %j', (text, message) => {
    expect(() => dn(text)).toThrow(DistinguishedNameError);
    expect(() => dn(text)).toThrow(message);
  });

  test('the canonical form sorts types, spells them as OpenSSL does and escapes values', () => {
    expect(dn('o=Acme, cn=bill\\,ing').canonical).toBe('CN=bill\\,ing,O=Acme');
    expect(dn('O=Acme,CN=billing').canonical).toBe(dn('CN=billing, O=Acme').canonical);
    expect(String(dn('CN=x'))).toBe('CN=x');
  });
});

describe('describeSubject', () => {
  test('prints a subject object for an error message, repeated attributes included, cut at 200 characters', () => {
    expect(describeSubject(subject({ CN: 'a,b', OU: ['x', 'y'] }))).toBe('CN=a\\,b,OU=x,OU=y');
    expect(describeSubject(subject({ CN: 'z'.repeat(300) }))).toHaveLength(203);
    expect(describeSubject(undefined)).toBe('(none)');
  });
});

describe('CallerRegistry', () => {
  const caller = (name: string, extra: Partial<CallerConfig>): CallerConfig => ({ name, keys: [], scopes: ['tokens:read'], providers: ['*'], ...extra });

  test('authenticateCertificate finds the caller whose certSubject the subject matches; key-only callers never match', () => {
    const registry = new CallerRegistry([
      caller('keys-only', { keys: [{ sha256: Buffer.alloc(32, 1), origin: 'sha256' }] }),
      caller('billing', { certSubject: dn('CN=billing') }),
      caller('acme-billing', { certSubject: dn('CN=billing,O=Acme'), providers: ['github'] }),
    ]);
    expect(registry.authenticateCertificate(subject({ CN: 'billing' }))?.name).toBe('billing');
    expect(registry.authenticateCertificate(subject({ CN: 'billing', O: 'Acme' }))?.name).toBe('acme-billing');
    expect(registry.authenticateCertificate(subject({ CN: 'keys-only' }))).toBeUndefined();
    expect(registry.authenticateCertificate(subject({ CN: 'billing', O: 'Other' }))).toBeUndefined();
  });

  test('a caller with both a key and a certSubject is the same caller either way', () => {
    const key = 'tv_both_key';
    const registry = new CallerRegistry([caller('both', { keys: [{ sha256: createHash('sha256').update(key).digest(), origin: 'env' }], certSubject: dn('CN=both') })]);
    expect(registry.authenticate(key)).toBe(registry.authenticateCertificate(subject({ CN: 'both' })));
  });
});
