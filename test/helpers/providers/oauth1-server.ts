import { createHmac, createPublicKey, randomBytes, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small, real OAuth 1.0a provider (RFC 5849) on loopback: temporary credentials (§2.1), a
 * headless authorization step (§2.2), token credentials (§2.3) and protected resources under
 * /api/ (§3). There is no runnable OAuth 1.0a provider on npm, so tests get this one.
 *
 * It is an oracle for src/providers/oauth1: it verifies signatures with its own percent-encoding,
 * parameter parsing and base string, written from the RFC and deliberately sharing no code (nor
 * encodeURIComponent / URLSearchParams) with the signer, so that a mistake in one is not repeated
 * in the other. The base string URI is built from the Host header the request carried, as a
 * provider behind its own name does.
 *
 * Refusals follow §3.2: 400 for a missing, duplicated or unsupported parameter, 401 for bad
 * credentials, a bad signature, a stale timestamp or a used nonce. Every answer to a wrong call
 * is a short text reason, never a stack.
 */

export type OAuth1ServerSignatureMethod = 'HMAC-SHA1' | 'HMAC-SHA256' | 'RSA-SHA1' | 'PLAINTEXT';

export interface OAuth1ServerConsumer {
  key: string;
  secret: string;
  signatureMethod: OAuth1ServerSignatureMethod;
  /** PEM (SPKI or PKCS#1), for RSA-SHA1. */
  publicKey?: string;
}

export interface OAuth1ServerOptions {
  consumers: OAuth1ServerConsumer[];
  /** Milliseconds since the epoch; timestamps are checked against it. Default Date.now. */
  now?: () => number;
  /** Refuse any request carrying oauth_version, as some providers do. */
  rejectVersion?: boolean;
}

/** What the (headless) user answers at the authorize step. */
export type AuthorizationDecision = { accountId: string; screenName?: string } | { deny: true };

export interface OAuth1ServerRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  /** Lower-cased, as node:http parses them. */
  headers: IncomingHttpHeaders;
  /** The raw body. */
  body: string;
  /** The body parsed as application/x-www-form-urlencoded, when it was sent as such (the last value wins for a repeated name). */
  form: Record<string, string>;
  /** The Authorization header's OAuth parameters, decoded, realm included; undefined without one (or when unreadable). */
  authorization: Record<string, string> | undefined;
  /** What the server answered. */
  status: number;
  /** Why it refused; undefined when it did not. */
  reason: string | undefined;
  /** Epoch milliseconds, by the server's clock (the `now` option). */
  receivedAt: number;
}

export interface IssuedAccessToken {
  token: string;
  tokenSecret: string;
  accountId: string;
  screenName: string;
}

/** §3.4.2-§3.4.4 name the signature methods; HMAC-SHA256 is HMAC-SHA1 with SHA-256. */
const HMAC_HASH = { 'HMAC-SHA1': 'sha1', 'HMAC-SHA256': 'sha256' } as const;

/** The window a timestamp must fall in, either way (clocks drift both ways). */
const TIMESTAMP_WINDOW_SECONDS = 300;
const MAX_BODY_BYTES = 64 * 1024;
const FORM = 'application/x-www-form-urlencoded';

type Pair = [string, string];

interface Account {
  accountId: string;
  screenName: string;
}

interface Consumer extends OAuth1ServerConsumer {
  rsaKey: KeyObject | undefined;
}

/** §2.1 temporary credentials, from issue to exchange. */
interface TemporaryCredential {
  consumerKey: string;
  secret: string;
  callback: string;
  state: 'issued' | 'authorized' | 'denied' | 'exchanged';
  verifier: string | undefined;
  account: Account | undefined;
}

interface AccessCredential {
  consumerKey: string;
  secret: string;
  account: Account;
}

type TokenKind = 'none' | 'temporary' | 'access';

interface Verified {
  consumer: Consumer;
  /** The protocol parameters, from the one place they travelled in. */
  protocol: Map<string, string>;
  token: string | undefined;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A refusal: its reason is the whole answer. */
class Refusal extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 405 | 413,
    readonly reason: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(reason);
  }
}

const bad = (reason: string) => new Refusal(400, reason);
const denied = (reason: string) => new Refusal(401, reason);

/** RFC 5849 §3.6, byte by byte over the UTF-8 form, independently of encodeURIComponent. */
function encode(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const alphanumeric = (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39);
    const unreserved = alphanumeric || byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e; // - . _ ~
    out += unreserved ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Percent-decoding to bytes, then UTF-8; a malformed escape or invalid UTF-8 is refused, not guessed at. */
function decode(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const char = value.charCodeAt(i);
    if (char === 0x25) {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw bad('malformed percent-encoding');
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (char < 0x80) {
      bytes.push(char);
    } else {
      // Unencoded non-ASCII should not reach here, but if it does, it is read as the text it is.
      const codePoint = value.codePointAt(i)!;
      bytes.push(...Buffer.from(String.fromCodePoint(codePoint), 'utf8'));
      if (codePoint > 0xffff) i++;
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    throw bad('parameters are not valid UTF-8');
  }
}

/** application/x-www-form-urlencoded: "&"-separated, the first "=" splits, "+" is a space. */
function parseForm(raw: string): Pair[] {
  const pairs: Pair[] = [];
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const at = part.indexOf('=');
    const name = at === -1 ? part : part.slice(0, at);
    const value = at === -1 ? '' : part.slice(at + 1);
    pairs.push([decode(name.replace(/\+/g, ' ')), decode(value.replace(/\+/g, ' '))]);
  }
  return pairs;
}

function formBody(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([name, value]) => `${encode(name)}=${encode(value)}`)
    .join('&');
}

/** §3.5.1: `OAuth name="value", ...`; undefined when the header is absent or of another scheme. */
function parseAuthorization(header: string | undefined): Pair[] | undefined {
  if (header === undefined) return undefined;
  const match = /^OAuth(?:\s+([\s\S]*))?$/i.exec(header.trim());
  if (!match) return undefined;
  const list = (match[1] ?? '').trim();
  if (list === '') return [];
  return list.split(',').map((item): Pair => {
    const parameter = /^\s*([^\s="]+)\s*=\s*"([^"]*)"\s*$/.exec(item);
    if (!parameter) throw bad('malformed Authorization header');
    return [decode(parameter[1]!), decode(parameter[2]!)];
  });
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** §3.4.1: METHOD&encode(base string URI)&encode(normalized parameters). */
function baseString(method: string, uri: string, parameters: Pair[]): string {
  const normalized = parameters
    .filter(([name]) => name !== 'oauth_signature')
    .map(([name, value]): Pair => [encode(name), encode(value)])
    .sort(([nameA, valueA], [nameB, valueB]) => compare(nameA, nameB) || compare(valueA, valueB))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
  return `${encode(method.toUpperCase())}&${encode(uri)}&${encode(normalized)}`;
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Canonical base64 only: a signature that only decodes to the right bytes after repair is not the right signature. */
function base64Bytes(value: string): Buffer | undefined {
  const bytes = Buffer.from(value, 'base64');
  return bytes.toString('base64') === value ? bytes : undefined;
}

function randomToken(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}

/** §2.2: the callback keeps its own query; the answer's parameters are appended to it, before any fragment. */
function withQuery(callback: string, fields: Record<string, string>): string {
  const hashAt = callback.indexOf('#');
  const base = hashAt === -1 ? callback : callback.slice(0, hashAt);
  const fragment = hashAt === -1 ? '' : callback.slice(hashAt);
  const separator = !base.includes('?') ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&';
  return `${base}${separator}${formBody(fields)}${fragment}`;
}

/** Any scheme: native apps call back to their own (myapp://done). */
function isAbsoluteUrl(value: string): boolean {
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

export class OAuth1Server {
  /** Every request received, oldest first. */
  readonly requests: OAuth1ServerRequest[] = [];

  private readonly consumers = new Map<string, Consumer>();
  private readonly temporary = new Map<string, TemporaryCredential>();
  private readonly access = new Map<string, AccessCredential>();
  private readonly usedNonces = new Set<string>();
  private readonly decisions: AuthorizationDecision[] = [];
  private readonly now: () => number;
  private accountCount = 0;
  private server: Server | undefined;
  private stopped: Promise<void> | undefined;

  constructor(private readonly options: OAuth1ServerOptions) {
    this.now = options.now ?? Date.now;
    for (const consumer of options.consumers) {
      if (consumer.signatureMethod === 'RSA-SHA1' && consumer.publicKey === undefined) throw new Error(`consumer ${consumer.key}: RSA-SHA1 needs publicKey`);
      const rsaKey = consumer.publicKey === undefined ? undefined : createPublicKey(consumer.publicKey);
      this.consumers.set(consumer.key, { ...consumer, rsaKey });
    }
  }

  /** Listens on 127.0.0.1, on a port the system picks. */
  async start(): Promise<this> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch(() => res.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return this;
  }

  get port(): number {
    if (!this.server) throw new Error('OAuth1Server: start() first');
    return (this.server.address() as AddressInfo).port;
  }

  /** http://127.0.0.1:<port>: the origin clients sign their URLs with. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get requestTokenUrl(): string {
    return `${this.url}/oauth/request_token`;
  }

  get authorizeUrl(): string {
    return `${this.url}/oauth/authorize`;
  }

  get accessTokenUrl(): string {
    return `${this.url}/oauth/access_token`;
  }

  /** Closes the server and every open connection. Safe to call twice. */
  stop(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    this.stopped ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return this.stopped;
  }

  /** What the user answers at the next authorize step (one decision per call, in order). Default: approve as a fresh account. */
  nextAuthorization(decision: AuthorizationDecision): void {
    this.decisions.push(decision);
  }

  /** Mints token credentials directly, for tests that sign requests without the three-legged flow. */
  issueAccessToken(options: { accountId?: string; screenName?: string; consumerKey?: string } = {}): IssuedAccessToken {
    const consumerKey = options.consumerKey ?? this.options.consumers[0]?.key;
    if (consumerKey === undefined || !this.consumers.has(consumerKey)) throw new Error('OAuth1Server.issueAccessToken: unknown consumer');
    const account = this.account(options.accountId === undefined ? undefined : { accountId: options.accountId, screenName: options.screenName });
    const token = randomToken('at');
    const tokenSecret = randomToken('ats');
    this.access.set(token, { consumerKey, secret: tokenSecret, account });
    return { token, tokenSecret, ...account };
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  private account(given: { accountId: string; screenName?: string | undefined } | undefined): Account {
    const accountId = given?.accountId ?? `account-${++this.accountCount}`;
    return { accountId, screenName: given?.screenName ?? `screen_${accountId}` };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks).toString('utf8');
    const record: OAuth1ServerRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body,
      form: {},
      authorization: undefined,
      status: 0,
      reason: undefined,
      receivedAt: this.now(),
    };
    this.requests.push(record);
    try {
      record.form = Object.fromEntries(this.formPairs(req, body));
    } catch {
      // unreadable: the route refuses it with the reason
    }
    try {
      const header = parseAuthorization(req.headers.authorization);
      if (header) record.authorization = Object.fromEntries(header);
    } catch {
      // unreadable: the route refuses it with the reason
    }

    let answer: Answer;
    try {
      if (size > MAX_BODY_BYTES) throw new Refusal(413, 'body too large');
      answer = this.route(req, body);
    } catch (error) {
      if (!(error instanceof Refusal)) {
        // A bug in this helper: the stack goes to the test log, never into the answer.
        console.error('OAuth1Server: internal error', error);
        answer = { status: 500, headers: { 'content-type': 'text/plain' }, body: 'internal error' };
        record.reason = 'internal error';
      } else {
        const headers: Record<string, string> = { 'content-type': 'text/plain', ...error.headers };
        if (error.status === 401) headers['www-authenticate'] = 'OAuth realm="oauth1-test-server"';
        answer = { status: error.status, headers, body: error.reason };
        record.reason = error.reason;
      }
    }
    record.status = answer.status;
    res.writeHead(answer.status, { ...answer.headers, 'content-length': String(Buffer.byteLength(answer.body)) });
    res.end(answer.body);
  }

  private route(req: IncomingMessage, body: string): Answer {
    const target = req.url ?? '';
    if (!target.startsWith('/')) throw bad('only origin-form request targets are served');
    const path = target.split('?')[0]!;
    const method = req.method ?? '';
    const allow = (...methods: string[]) => {
      if (!methods.includes(method)) throw new Refusal(405, 'method not allowed', { allow: methods.join(', ') });
    };
    if (path === '/oauth/request_token') {
      allow('POST');
      return this.requestToken(req, body);
    }
    if (path === '/oauth/authorize') {
      allow('GET');
      return this.authorize(req);
    }
    if (path === '/oauth/access_token') {
      allow('POST');
      return this.accessToken(req, body);
    }
    if (path.startsWith('/api/')) {
      allow('GET', 'POST');
      return this.resource(req, body);
    }
    throw new Refusal(404, 'not found');
  }

  /** §2.1: signed with the client credentials only; the callback is required. */
  private requestToken(req: IncomingMessage, body: string): Answer {
    const { consumer, protocol } = this.authenticate(req, body, 'none');
    const callback = protocol.get('oauth_callback');
    if (callback === undefined) throw bad('oauth_callback is required');
    if (callback !== 'oob' && !isAbsoluteUrl(callback)) throw bad('oauth_callback must be an absolute URL or "oob"');
    const token = randomToken('rt');
    const secret = randomToken('rts');
    this.temporary.set(token, { consumerKey: consumer.key, secret, callback, state: 'issued', verifier: undefined, account: undefined });
    return this.form({ oauth_token: token, oauth_token_secret: secret, oauth_callback_confirmed: 'true' });
  }

  /** §2.2, headless: the decision set with nextAuthorization() is the user's answer. A request token is authorized once. */
  private authorize(req: IncomingMessage): Answer {
    const query = parseForm((req.url ?? '').split('?').slice(1).join('?'));
    const tokens = query.filter(([name]) => name === 'oauth_token');
    if (tokens.length !== 1) throw bad('oauth_token is required, once');
    const token = tokens[0]![1];
    const credential = this.temporary.get(token);
    if (!credential) throw bad('unknown request token');
    if (credential.state !== 'issued') throw bad('request token already used');

    const decision = this.decisions.shift() ?? { accountId: this.account(undefined).accountId };
    let fields: Record<string, string>;
    if ('deny' in decision) {
      credential.state = 'denied';
      // Twitter's way of saying no: the callback gets denied=<token> and nothing else.
      fields = { denied: token };
    } else {
      credential.state = 'authorized';
      credential.verifier = randomToken('v');
      credential.account = this.account(decision);
      fields = { oauth_token: token, oauth_verifier: credential.verifier };
    }
    // oob: there is nowhere to send the user, so the page shows what the user would type in.
    if (credential.callback === 'oob') return this.form(fields);
    return { status: 302, headers: { location: withQuery(credential.callback, fields) }, body: '' };
  }

  /** §2.3: signed with the client and the temporary credentials, with the verifier; single use. */
  private accessToken(req: IncomingMessage, body: string): Answer {
    const { protocol, token } = this.authenticate(req, body, 'temporary');
    const credential = this.temporary.get(token!)!;
    if (credential.state === 'exchanged') throw denied('request token already used');
    if (credential.state === 'denied') throw denied('the user denied access');
    if (credential.state !== 'authorized') throw denied('request token not authorized');
    const verifier = protocol.get('oauth_verifier');
    if (verifier === undefined) throw bad('oauth_verifier is required');
    if (!sameBytes(Buffer.from(verifier), Buffer.from(credential.verifier!))) throw denied('invalid verifier');

    credential.state = 'exchanged';
    const account = credential.account!;
    const accessToken = randomToken('at');
    const accessSecret = randomToken('ats');
    this.access.set(accessToken, { consumerKey: credential.consumerKey, secret: accessSecret, account });
    return this.form({ oauth_token: accessToken, oauth_token_secret: accessSecret, user_id: account.accountId, screen_name: account.screenName });
  }

  /** §3: any path under /api/ is a protected resource. */
  private resource(req: IncomingMessage, body: string): Answer {
    const { consumer, token } = this.authenticate(req, body, 'access');
    const credential = this.access.get(token!)!;
    const answer = { ok: true, user_id: credential.account.accountId, consumer: consumer.key };
    return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(answer) };
  }

  private form(fields: Record<string, string>): Answer {
    return { status: 200, headers: { 'content-type': FORM }, body: formBody(fields) };
  }

  /** §3.4.1.3.1: the body counts only when it is a form, declared as such. */
  private formPairs(req: IncomingMessage, body: string): Pair[] {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    return type === FORM ? parseForm(body) : [];
  }

  /** §3.2: everything a server checks before it trusts a request, in an order that leaks nothing to a forger. */
  private authenticate(req: IncomingMessage, body: string, kind: TokenKind): Verified {
    const host = req.headers.host;
    if (!host) throw bad('missing Host header');
    const [path, ...rest] = (req.url ?? '').split('?');
    const query = parseForm(rest.join('?'));
    const form = this.formPairs(req, body);
    const header = parseAuthorization(req.headers.authorization);
    const headerPairs = (header ?? []).filter(([name]) => name !== 'realm');

    // §3.5: the protocol parameters travel in one place only.
    const isProtocol = ([name]: Pair) => name.startsWith('oauth_');
    const locations = [headerPairs, form, query].filter((pairs) => pairs.some(isProtocol));
    if (locations.length > 1) throw bad('protocol parameters in more than one location');
    const protocol = new Map<string, string>();
    for (const [name, value] of (locations[0] ?? []).filter(isProtocol)) {
      if (protocol.has(name)) throw bad(`duplicated protocol parameter ${name}`);
      protocol.set(name, value);
    }

    const required = (name: string) => {
      const value = protocol.get(name);
      if (value === undefined) throw bad(`missing ${name}`);
      return value;
    };
    const consumerKey = required('oauth_consumer_key');
    const method = required('oauth_signature_method');
    const signature = required('oauth_signature');
    // §3.1: PLAINTEXT may leave both out (and loses replay protection with them).
    const timestamp = method === 'PLAINTEXT' ? protocol.get('oauth_timestamp') : required('oauth_timestamp');
    const nonce = method === 'PLAINTEXT' ? protocol.get('oauth_nonce') : required('oauth_nonce');
    const version = protocol.get('oauth_version');
    if (version !== undefined && this.options.rejectVersion) throw bad('oauth_version is not accepted');
    if (version !== undefined && version !== '1.0') throw bad('unsupported oauth_version');

    const consumer = this.consumers.get(consumerKey);
    if (!consumer) throw denied('unknown consumer');
    if (method !== consumer.signatureMethod) throw bad(`signature method ${method} is not allowed for this consumer`);

    if (timestamp !== undefined) {
      if (!/^[0-9]+$/.test(timestamp)) throw bad('malformed oauth_timestamp');
      const skew = Math.abs(Math.floor(this.now() / 1000) - Number(timestamp));
      if (skew > TIMESTAMP_WINDOW_SECONDS) throw denied('timestamp outside the accepted window');
    }

    const token = protocol.get('oauth_token');
    let tokenSecret = '';
    if (kind === 'none') {
      if (token !== undefined && token !== '') throw bad('a request-token call carries no oauth_token');
    } else {
      if (token === undefined || token === '') throw bad('missing oauth_token');
      const credential = kind === 'temporary' ? this.temporary.get(token) : this.access.get(token);
      if (!credential) throw denied(kind === 'temporary' ? 'unknown request token' : 'unknown or revoked access token');
      if (credential.consumerKey !== consumer.key) throw denied('token issued to another consumer');
      tokenSecret = credential.secret;
    }

    // §3.4.1.2 from what this request was addressed to: the Host it carried, lower-cased, default port dropped.
    const uri = `http://${host.toLowerCase().replace(/:80$/, '')}${path}`;
    const signed = baseString(req.method ?? '', uri, [...query, ...form, ...headerPairs]);
    const key = `${encode(consumer.secret)}&${encode(tokenSecret)}`;
    if (!this.signatureMatches(consumer, signed, key, signature)) throw denied('invalid signature');

    if (timestamp !== undefined && nonce !== undefined) {
      // §3.3: a nonce is unique per timestamp and credentials; checked after the signature so a forger cannot burn nonces.
      const used = `${consumer.key}\n${token ?? ''}\n${timestamp}\n${nonce}`;
      if (this.usedNonces.has(used)) throw denied('nonce already used');
      this.usedNonces.add(used);
    }
    return { consumer, protocol, token };
  }

  private signatureMatches(consumer: Consumer, signed: string, key: string, signature: string): boolean {
    switch (consumer.signatureMethod) {
      case 'HMAC-SHA1':
      case 'HMAC-SHA256': {
        const given = base64Bytes(signature);
        const expected = createHmac(HMAC_HASH[consumer.signatureMethod], key).update(signed, 'utf8').digest();
        return given !== undefined && sameBytes(given, expected);
      }
      case 'RSA-SHA1': {
        const given = base64Bytes(signature);
        return given !== undefined && verify('sha1', Buffer.from(signed, 'utf8'), consumer.rsaKey!, given);
      }
      case 'PLAINTEXT':
        return sameBytes(Buffer.from(signature, 'utf8'), Buffer.from(key, 'utf8'));
    }
  }
}
