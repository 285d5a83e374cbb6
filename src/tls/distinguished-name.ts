/**
 * A caller's `certSubject` (DESIGN §3): the distinguished name a client certificate must carry
 * to authenticate as that caller under mutual TLS.
 *
 * The match rule, chosen to be predictable rather than clever:
 *   - the configured DN is a comma-separated list of `TYPE=value` (RFC 4514 escaping: `\,`,
 *     `\+`, `\\`, `\"`, `\=`, `\<`, `\>`, `\;`, `\#`, `\ ` and `\XX` hex pairs; spaces around
 *     types and values are ignored, so "CN=billing, O=Acme" works);
 *   - TYPE is a short name as Node reports it (CN, O, OU, C, ST, L, DC, UID, emailAddress, ...),
 *     compared without regard to case, or a dotted OID;
 *   - the certificate's subject must hold exactly those attributes, no more and no fewer, each
 *     exactly once, with exactly equal values (case-sensitive, no normalisation); order does not
 *     matter, because Node hands the subject over as an unordered object.
 * So "CN=billing" does not match a certificate whose subject is "CN=billing, O=Acme": an extra
 * attribute is a different identity, not a more specific one. An attribute the certificate
 * repeats (two OUs) never matches, and a configured DN cannot name one type twice, so no
 * ordering or multi-value ambiguity decides who a caller is. Multi-valued RDNs (`+`) and
 * `#`-hex values are refused when the configuration is loaded.
 *
 * Only a certificate the server's CA verified is ever matched (see http/middleware/auth.ts);
 * whoever can get a certificate signed by that CA can choose its subject, so the CA is the
 * trust anchor for caller identity.
 */

/** Short names OpenSSL (and so Node's getPeerCertificate) uses for subject attributes. */
const KNOWN_TYPES = [
  'CN', 'O', 'OU', 'C', 'ST', 'L', 'street', 'DC', 'UID', 'emailAddress', 'serialNumber', 'SN', 'GN',
  'title', 'initials', 'pseudonym', 'generationQualifier', 'dnQualifier', 'name', 'postalCode',
  'businessCategory', 'organizationIdentifier',
];
const TYPE_BY_LOWER = new Map(KNOWN_TYPES.map((type) => [type.toLowerCase(), type]));
const OID = /^[0-2](\.(0|[1-9]\d*))+$/;
const SPECIAL = new Set([',', '+', '"', '\\', '<', '>', ';', '=', '#', ' ']);

export class DistinguishedNameError extends Error {}

export class DistinguishedName {
  private constructor(
    /** Lower-cased type → value. */
    private readonly attributes: ReadonlyMap<string, string>,
    /** Canonical text: types as OpenSSL spells them, sorted, values escaped. */
    readonly canonical: string,
  ) {}

  /** Throws DistinguishedNameError with a message fit for a config error (it quotes no value). */
  static parse(text: string): DistinguishedName {
    const attributes = new Map<string, string>();
    const spelled: [string, string][] = [];
    for (const [type, value] of splitAttributes(text)) {
      const key = type.toLowerCase();
      const canonicalType = OID.test(type) ? type : TYPE_BY_LOWER.get(key);
      if (canonicalType === undefined) {
        throw new DistinguishedNameError(`unknown attribute type "${type}" (use ${KNOWN_TYPES.slice(0, 10).join(', ')}, ... or a dotted OID)`);
      }
      if (attributes.has(key)) throw new DistinguishedNameError(`${canonicalType} appears twice; a subject with a repeated attribute never matches`);
      attributes.set(key, value);
      spelled.push([canonicalType, value]);
    }
    if (attributes.size === 0) throw new DistinguishedNameError('is empty; give at least one attribute, e.g. "CN=billing"');
    const canonical = spelled
      .sort(([a], [b]) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1))
      .map(([type, value]) => `${type}=${escapeValue(value)}`)
      .join(',');
    return new DistinguishedName(attributes, canonical);
  }

  /**
   * True when `subject` — the `subject` object of tls.TLSSocket#getPeerCertificate(), where a
   * repeated attribute arrives as an array — holds exactly this DN's attributes and values.
   */
  matches(subject: unknown): boolean {
    if (typeof subject !== 'object' || subject === null) return false;
    const entries = Object.entries(subject);
    if (entries.length !== this.attributes.size) return false;
    const seen = new Set<string>();
    for (const [type, value] of entries) {
      const key = type.toLowerCase();
      // Two spellings of one type would let one configured attribute be checked twice and
      // another not at all; an array is a repeated attribute. Neither matches.
      if (seen.has(key) || typeof value !== 'string') return false;
      seen.add(key);
      if (this.attributes.get(key) !== value) return false;
    }
    return true;
  }

  toString(): string {
    return this.canonical;
  }
}

/** A certificate subject as text for an error message: `CN=x,OU=a,OU=b`, escaped and cut short. */
export function describeSubject(subject: unknown): string {
  if (typeof subject !== 'object' || subject === null) return '(none)';
  const parts = Object.entries(subject).flatMap(([type, value]: [string, unknown]) =>
    (Array.isArray(value) ? value : [value]).map((item) => `${type}=${escapeValue(String(item))}`),
  );
  const text = parts.join(',');
  return text.length > 200 ? `${text.slice(0, 200)}...` : text || '(empty)';
}

function escapeValue(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[,+"\\<>;=#]|^ | $|[\x00-\x1f]/g, (char) => (char < ' ' ? `\\${char.charCodeAt(0).toString(16).padStart(2, '0')}` : `\\${char}`));
}

/** RFC 4514 tokenising of `TYPE=value,TYPE=value`. */
function splitAttributes(text: string): [string, string][] {
  const result: [string, string][] = [];
  let i = 0;
  while (i < text.length) {
    const equals = text.indexOf('=', i);
    if (equals < 0) throw new DistinguishedNameError(`expected TYPE=value at position ${i + 1}`);
    const type = text.slice(i, equals).trim();
    if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(type) && !OID.test(type)) {
      throw new DistinguishedNameError(`"${type}" at position ${i + 1} is not an attribute type`);
    }
    const [value, end] = readValue(text, equals + 1);
    result.push([type, value]);
    if (end === text.length) break;
    i = end + 1; // past the comma
    if (i === text.length) throw new DistinguishedNameError('ends with a comma');
  }
  return result;
}

/** Reads one value from `start`; answers it and the index of the comma that ends it (or the end). */
function readValue(text: string, start: number): [string, number] {
  const bytes: number[] = [];
  let i = start;
  // Spaces before the value are not part of it; spaces after it are trimmed below, escaped ones kept.
  while (text[i] === ' ') i += 1;
  if (text[i] === '#') throw new DistinguishedNameError('#-hex (BER) attribute values are not supported; write the value as text');
  let keptLength = 0; // bytes up to the last character that was not an unescaped space
  while (i < text.length) {
    const char = String.fromCodePoint(text.codePointAt(i)!);
    if (char === ',') break;
    if (char === '+') throw new DistinguishedNameError('multi-valued RDNs ("+") are not supported; separate attributes with "," (escape a literal + as \\+)');
    if (char === '"' || char === ';' || char === '<' || char === '>') {
      throw new DistinguishedNameError(`"${char}" at position ${i + 1} must be escaped as \\${char}`);
    }
    if (char !== '\\') {
      bytes.push(...Buffer.from(char, 'utf8'));
      if (char !== ' ') keptLength = bytes.length;
      i += char.length;
      continue;
    }
    const next = text[i + 1];
    const hex = text.slice(i + 1, i + 3);
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 3;
    } else if (next !== undefined && SPECIAL.has(next)) {
      bytes.push(next.charCodeAt(0));
      i += 2;
    } else {
      throw new DistinguishedNameError(`a backslash at position ${i + 1} escapes nothing (escape , + " \\ < > ; = # or a space, or write \\XX in hex)`);
    }
    keptLength = bytes.length;
  }
  const raw = Buffer.from(bytes.slice(0, keptLength));
  const value = raw.toString('utf8');
  if (!Buffer.from(value, 'utf8').equals(raw)) throw new DistinguishedNameError(`the \\XX escapes of the value at position ${start + 1} are not valid UTF-8`);
  if (value.length === 0) throw new DistinguishedNameError(`an empty value at position ${start + 1}`);
  return [value, i];
}
