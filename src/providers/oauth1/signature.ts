import { createHmac, createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { InvalidRequestError } from '../../errors';
import type { Secret } from '../../secret';

/**
 * OAuth 1.0a request signing as RFC 5849 §3 defines it: the signature base string (§3.4.1, with
 * the base string URI of §3.4.1.2 and the parameters collected and normalised as §3.4.1.3 says),
 * HMAC-SHA1 (§3.4.2), RSA-SHA1 (§3.4.3), PLAINTEXT (§3.4.4), percent-encoding (§3.6) and the
 * Authorization header (§3.5.1). HMAC-SHA256 is not in the RFC: it is HMAC-SHA1's construction
 * with SHA-256, as the providers that offer it define it.
 *
 * Pure on purpose: the nonce and the timestamp come from the caller, so a signature can be
 * reproduced in a test and nothing here depends on the clock or on I/O.
 *
 * Everything returned carries credentials: the header and the base string hold oauth_token, and a
 * PLAINTEXT signature is the secrets themselves. Errors never quote a secret, a token, a key, a
 * parameter value or the URL (which may carry any of those).
 */

export type SignatureMethod = 'HMAC-SHA1' | 'HMAC-SHA256' | 'RSA-SHA1' | 'PLAINTEXT';

/** The app (consumer) that signs. */
export interface OAuth1Client {
  consumerKey: string;
  consumerSecret: Secret;
  signatureMethod: SignatureMethod;
  /** PEM (PKCS#1 or PKCS#8, unencrypted); required for RSA-SHA1. */
  privateKey?: Secret;
  /** Add oauth_version="1.0": optional in the RFC, required by some providers, refused by others. */
  includeVersion: boolean;
}

export interface OAuth1Request {
  /** Any case; upper-cased in the base string. */
  method: string;
  /** An absolute http(s) URL, which may carry a query string. */
  url: string;
  /**
   * The application/x-www-form-urlencoded body parameters, unencoded; they are signed, so send
   * exactly these. Leave out for any other kind of body, which is not signed (§3.4.1.3.1).
   */
  form?: Record<string, string | string[]>;
}

export interface OAuth1SignOptions {
  /** oauth_token; absent for request-token calls (§2.1). */
  token?: Secret | null;
  /** The token secret; '' when absent. */
  tokenSecret?: Secret | null;
  nonce: string;
  /** Whole seconds since the epoch, as a decimal string. */
  timestamp: string;
  /** Extra protocol parameters, e.g. oauth_callback or oauth_verifier; signed and put in the header. */
  extra?: Record<string, string>;
  /** Put in the header (not signed), per RFC 5849 §3.5.1. */
  realm?: string;
}

export interface OAuth1Signature {
  /** 'OAuth oauth_consumer_key="...", ..., oauth_signature="..."' */
  authorization: string;
  /** The oauth_signature value (not percent-encoded). */
  signature: string;
  /** For tests and debugging; '' for PLAINTEXT, which signs no base string. Holds oauth_token. */
  baseString: string;
}

const SIGNATURE_METHODS: readonly SignatureMethod[] = ['HMAC-SHA1', 'HMAC-SHA256', 'RSA-SHA1', 'PLAINTEXT'];

/** Set by signRequest itself; `extra` must not replace them. */
const RESERVED_PARAMETERS = new Set([
  'realm',
  'oauth_consumer_key',
  'oauth_token',
  'oauth_signature_method',
  'oauth_signature',
  'oauth_timestamp',
  'oauth_nonce',
  'oauth_version',
]);

/** RFC 9110 §5.6.2 token: what an HTTP method may be. */
const HTTP_METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** RFC 5849 §3.6: RFC 3986 unreserved characters stay, every other UTF-8 byte becomes %XX (upper-case hex). */
export function percentEncode(value: string): string {
  let encoded: string;
  try {
    encoded = encodeURIComponent(value);
  } catch {
    // A lone surrogate has no UTF-8 form: signing a replacement character would sign something
    // other than what is sent.
    throw new InvalidRequestError('a signed value is not well-formed Unicode text');
  }
  // encodeURIComponent leaves these alone, but they are not RFC 3986 unreserved.
  return encoded.replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Never quotes the URL: it may carry user info or tokens in its query. */
function parseRequestUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidRequestError('the request URL must be an absolute http or https URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InvalidRequestError('the request URL must be an absolute http or https URL');
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new InvalidRequestError('the request URL must not carry a user name or password');
  }
  return parsed;
}

/**
 * The WHATWG parser already does what §3.4.1.2 asks: scheme and host lower-cased, the default
 * port dropped, an empty path made "/". Its pathname is also the path fetch puts on the request
 * line, so the signature covers what is actually sent.
 */
function stringUri(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** §3.4.1.3.1: the query is application/x-www-form-urlencoded, so "+" is a space. */
function queryParameters(url: URL): [string, string][] {
  return [...new URLSearchParams(url.search)];
}

/** RFC 5849 §3.4.1.2: scheme and host lower-cased, default port dropped, no query, no fragment. */
export function baseStringUri(url: string): string {
  return stringUri(parseRequestUrl(url));
}

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * RFC 5849 §3.4.1.3.2: names and values percent-encoded, sorted by name then value, repeated
 * names kept. The encoded strings are ASCII, so UTF-16 comparison is the byte order the RFC asks.
 */
export function normalizeParameters(pairs: [string, string][]): string {
  return pairs
    .map(([name, value]): [string, string] => [percentEncode(name), percentEncode(value)])
    .sort(([nameA, valueA], [nameB, valueB]) => byteOrder(nameA, nameB) || byteOrder(valueA, valueB))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

/**
 * RFC 5849 §3.4.1. `pairs` are the parameters from outside the URL (form body and protocol
 * parameters, unencoded); the URL's own query parameters are parsed and merged here. Any
 * oauth_signature is left out, wherever it comes from (§3.4.1.3.1).
 */
export function signatureBaseString(method: string, url: string, pairs: [string, string][]): string {
  if (typeof method !== 'string' || !HTTP_METHOD.test(method)) throw new InvalidRequestError('the request method is not a valid HTTP method');
  const parsed = parseRequestUrl(url);
  const parameters = [...queryParameters(parsed), ...pairs].filter(([name]) => name !== 'oauth_signature');
  return [method.toUpperCase(), percentEncode(stringUri(parsed)), percentEncode(normalizeParameters(parameters))].join('&');
}

/** Checked at run time too: callers build forms from JSON, where a number or null slips in easily. */
function formParameters(form: OAuth1Request['form']): [string, string][] {
  if (form === undefined) return [];
  if (form === null || typeof form !== 'object' || Array.isArray(form)) throw new InvalidRequestError('the form must be an object of string values');
  const pairs: [string, string][] = [];
  for (const [name, value] of Object.entries(form)) {
    const values: unknown[] = Array.isArray(value) ? value : [value];
    for (const item of values) {
      if (typeof item !== 'string') throw new InvalidRequestError(`form parameter "${name}" must be a string or an array of strings`);
      pairs.push([name, item]);
    }
  }
  return pairs;
}

/**
 * §3.5: oauth_* parameters travel in one place only, and here that is the header. One in the
 * query or the form as well would be signed twice and make the provider refuse the request.
 */
function refuseProtocolParameters(pairs: [string, string][], where: string): void {
  if (pairs.some(([name]) => name.startsWith('oauth_'))) {
    throw new InvalidRequestError(`oauth_* parameters go in the Authorization header, not in the ${where}`);
  }
}

function protocolParameters(client: OAuth1Client, options: OAuth1SignOptions): [string, string][] {
  if (typeof client.consumerKey !== 'string' || client.consumerKey === '') throw new InvalidRequestError('the consumer key is missing');
  if (typeof options.nonce !== 'string' || options.nonce === '') throw new InvalidRequestError('the nonce must be a non-empty string');
  if (typeof options.timestamp !== 'string' || !/^[0-9]+$/.test(options.timestamp)) {
    throw new InvalidRequestError('the timestamp must be whole seconds as a decimal string');
  }
  const parameters: [string, string][] = [['oauth_consumer_key', client.consumerKey]];
  if (options.token) parameters.push(['oauth_token', options.token.reveal()]);
  parameters.push(['oauth_signature_method', client.signatureMethod], ['oauth_timestamp', options.timestamp], ['oauth_nonce', options.nonce]);
  if (client.includeVersion) parameters.push(['oauth_version', '1.0']);
  for (const [name, value] of Object.entries(options.extra ?? {})) {
    if (RESERVED_PARAMETERS.has(name)) throw new InvalidRequestError(`the extra parameter "${name}" is set by the signer itself`);
    if (typeof value !== 'string') throw new InvalidRequestError(`the extra parameter "${name}" must be a string`);
    parameters.push([name, value]);
  }
  return parameters;
}

/** Parsed per request: the key is a Secret, and a KeyObject kept around would outlive it. */
function rsaPrivateKey(privateKey: Secret | undefined): KeyObject {
  if (!privateKey) throw new InvalidRequestError('RSA-SHA1 needs the client private key');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privateKey.reveal(), format: 'pem' });
  } catch {
    // OpenSSL's message is not passed on: it is no help to the caller and may quote the input.
    throw new InvalidRequestError('the RSA-SHA1 private key is not a readable, unencrypted PEM private key (PKCS#1 or PKCS#8)');
  }
  if (key.asymmetricKeyType !== 'rsa') throw new InvalidRequestError('the RSA-SHA1 private key is not an RSA key');
  return key;
}

/** §3.4.2 and §3.4.4: the key is both secrets, each encoded, joined by "&" even when the token secret is empty. */
function signingKey(client: OAuth1Client, options: OAuth1SignOptions): string {
  return `${percentEncode(client.consumerSecret.reveal())}&${percentEncode(options.tokenSecret?.reveal() ?? '')}`;
}

/** Signs one request and builds its Authorization header (RFC 5849 §3.1–§3.5.1). */
export function signRequest(client: OAuth1Client, request: OAuth1Request, options: OAuth1SignOptions): OAuth1Signature {
  if (!SIGNATURE_METHODS.includes(client.signatureMethod)) throw new InvalidRequestError('unsupported OAuth 1.0a signature method');
  const url = parseRequestUrl(request.url);
  const form = formParameters(request.form);
  refuseProtocolParameters(queryParameters(url), 'URL query');
  refuseProtocolParameters(form, 'form');
  const protocol = protocolParameters(client, options);
  // Built even for PLAINTEXT so that every method validates the request the same way.
  const baseString = signatureBaseString(request.method, request.url, [...form, ...protocol]);

  let signature: string;
  switch (client.signatureMethod) {
    case 'HMAC-SHA1':
      signature = createHmac('sha1', signingKey(client, options)).update(baseString, 'utf8').digest('base64');
      break;
    case 'HMAC-SHA256':
      signature = createHmac('sha256', signingKey(client, options)).update(baseString, 'utf8').digest('base64');
      break;
    case 'RSA-SHA1':
      // A KeyObject of type rsa signs with RSASSA-PKCS1-v1_5, which is what §3.4.3 names.
      signature = sign('sha1', Buffer.from(baseString, 'utf8'), rsaPrivateKey(client.privateKey)).toString('base64');
      break;
    case 'PLAINTEXT':
      signature = signingKey(client, options);
      break;
  }

  // Sorted so that the same request always gives the same header, byte for byte.
  const headerParameters = [...protocol, ['oauth_signature', signature] as [string, string]]
    .sort(([nameA], [nameB]) => byteOrder(nameA, nameB))
    .map(([name, value]) => `${percentEncode(name)}="${percentEncode(value)}"`);
  // realm is not a parameter of the request (§3.4.1.3.1 leaves it out); encoded all the same, so
  // that no value can break out of its quotes.
  if (options.realm !== undefined) headerParameters.unshift(`realm="${percentEncode(options.realm)}"`);

  return {
    authorization: `OAuth ${headerParameters.join(', ')}`,
    signature,
    baseString: client.signatureMethod === 'PLAINTEXT' ? '' : baseString,
  };
}

const NONCE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const NONCE_LENGTH = 32;
/** The largest multiple of 62 below 256: bytes from here up are dropped so every character is equally likely. */
const NONCE_BYTE_LIMIT = 248;

/** 32 characters of [A-Za-z0-9] from the crypto random source: about 190 bits. */
export function newNonce(): string {
  let nonce = '';
  while (nonce.length < NONCE_LENGTH) {
    for (const byte of randomBytes(NONCE_LENGTH * 2)) {
      if (byte < NONCE_BYTE_LIMIT && nonce.length < NONCE_LENGTH) nonce += NONCE_ALPHABET.charAt(byte % NONCE_ALPHABET.length);
    }
  }
  return nonce;
}
