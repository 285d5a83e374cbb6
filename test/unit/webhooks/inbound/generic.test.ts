import { createHmac, randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { createVerifier, type InboundRequest, type InboundVerifier } from '../../../../src/webhooks/inbound/verifier';

const TOLERANCE = 300;
const NOW_MS = 1_700_000_000_000;
const NOW_S = NOW_MS / 1000;
const whsec = (): string => `whsec_${randomBytes(32).toString('base64')}`;

function request(headers: Record<string, string>, body: string | Buffer, now = NOW_MS): InboundRequest {
  return { header: (name) => headers[name], rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), now };
}

/**
 * A request signed by the standardwebhooks package, independent of our signer. Its sign() turns
 * a Buffer into a string first, so bytes that are not UTF-8 are signed here with node:crypto.
 */
function signedRequest(secret: string, body: string | Buffer, options: { id?: string; timestamp?: number } = {}): InboundRequest {
  const id = options.id ?? 'msg_2ZdtJ4x6c9';
  const timestamp = options.timestamp ?? NOW_S;
  const raw = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const signature =
    typeof body === 'string'
      ? new Webhook(secret).sign(id, new Date(timestamp * 1000), body)
      : `v1,${createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update(`${id}.${timestamp}.`).update(raw).digest('base64')}`;
  return request({ 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature }, raw);
}

describe('generic (Standard Webhooks) inbound verifier', () => {
  const secret = whsec();
  let verifier: InboundVerifier;
  beforeAll(() => {
    verifier = createVerifier({ type: 'generic', secrets: [secret], toleranceSeconds: TOLERANCE });
  });

  test('a signed account_id revokes that account, with webhook-id as the delivery id', () => {
    expect(verifier.verify(signedRequest(secret, '{"account_id":"12345"}', { id: 'msg_abc' }))).toEqual({
      kind: 'revoke',
      deliveryId: 'msg_abc',
      event: 'revocation',
      accountIds: ['12345'],
    });
  });

  test('account_ids are deduplicated and the body type names the event', () => {
    const body = JSON.stringify({ type: 'grant.revoked', account_ids: ['a', 'b', 'a', 'ü-ñ'] });
    expect(verifier.verify(signedRequest(secret, body))).toEqual({
      kind: 'revoke',
      deliveryId: 'msg_2ZdtJ4x6c9',
      event: 'grant.revoked',
      accountIds: ['a', 'b', 'ü-ñ'],
    });
  });

  test('while rotating, a request signed with either secret is accepted', () => {
    const next = whsec();
    const rotating = createVerifier({ type: 'generic', secrets: [secret, next], toleranceSeconds: TOLERANCE });
    expect(rotating.verify(signedRequest(next, '{"account_id":"1"}')).kind).toBe('revoke');
    expect(rotating.verify(signedRequest(secret, '{"account_id":"1"}')).kind).toBe('revoke');
    expect(verifier.verify(signedRequest(next, '{"account_id":"1"}')).kind).toBe('reject');
  });

  test('a secret without the whsec_ prefix is used as its UTF-8 bytes', () => {
    const plain = 'a shared secret, not base64';
    const plainVerifier = createVerifier({ type: 'generic', secrets: [plain], toleranceSeconds: TOLERANCE });
    const signer = new Webhook(Buffer.from(plain, 'utf8'), { format: 'raw' });
    const body = '{"account_id":"7"}';
    const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(NOW_S), 'webhook-signature': signer.sign('msg_1', new Date(NOW_MS), body) };
    expect(plainVerifier.verify(request(headers, body))).toMatchObject({ kind: 'revoke', accountIds: ['7'] });
  });

  test('a forged request (another secret) is rejected', () => {
    expect(verifier.verify(signedRequest(whsec(), '{"account_id":"1"}'))).toEqual({ kind: 'reject', reason: 'signature does not match' });
  });

  test('a body with one changed byte is rejected', () => {
    const signed = signedRequest(secret, '{"account_id":"12345"}');
    const tampered = Buffer.from(signed.rawBody);
    tampered[tampered.length - 3] = '9'.charCodeAt(0);
    expect(verifier.verify({ ...signed, rawBody: tampered })).toEqual({ kind: 'reject', reason: 'signature does not match' });
  });

  test('stale and future timestamps are rejected even with a valid signature', () => {
    for (const timestamp of [NOW_S - TOLERANCE - 1, NOW_S + TOLERANCE + 1]) {
      expect(verifier.verify(signedRequest(secret, '{"account_id":"1"}', { timestamp }))).toEqual({
        kind: 'reject',
        reason: 'timestamp outside the tolerance',
      });
    }
  });

  test('a request missing any of the three headers is rejected', () => {
    const signed = signedRequest(secret, '{"account_id":"1"}');
    for (const missing of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const partial: InboundRequest = { ...signed, header: (name) => (name === missing ? undefined : signed.header(name)) };
      expect(verifier.verify(partial)).toEqual({ kind: 'reject', reason: 'missing signature headers' });
    }
  });

  test.each([
    ['malformed JSON', '{"account_id":'],
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0x7d])],
    ['a JSON array', '["1"]'],
    ['neither account_id nor account_ids', '{"type":"revocation"}'],
    ['both account_id and account_ids', '{"account_id":"1","account_ids":["2"]}'],
    ['an empty account_id', '{"account_id":""}'],
    ['an empty account_ids list', '{"account_ids":[]}'],
    ['a number in account_ids', '{"account_ids":["1",2]}'],
    ['an account id of 257 characters', JSON.stringify({ account_id: 'x'.repeat(257) })],
    ['1001 account ids', JSON.stringify({ account_ids: Array.from({ length: 1001 }, (_, i) => `u${i}`) })],
    ['a non-string type', '{"type":7,"account_id":"1"}'],
  ])('a validly signed body with %s is invalid, not rejected', (_name, body) => {
    const outcome = verifier.verify(signedRequest(secret, body));
    expect(outcome.kind).toBe('invalid');
  });

  test('1000 account ids and an id of 256 characters are accepted', () => {
    const ids = Array.from({ length: 999 }, (_, i) => `u${i}`).concat('x'.repeat(256));
    const outcome = verifier.verify(signedRequest(secret, JSON.stringify({ account_ids: ids })));
    expect(outcome).toMatchObject({ kind: 'revoke', accountIds: ids });
  });

  test('reasons never quote the body or the signature', () => {
    const signed = signedRequest(whsec(), '{"account_id":"secret-account"}');
    const outcome = verifier.verify(signed);
    const text = JSON.stringify(outcome);
    expect(text).not.toContain('secret-account');
    expect(text).not.toContain(signed.header('webhook-signature')!.slice(3));
  });

  test('an unusable secret fails when the verifier is created', () => {
    expect(() => createVerifier({ type: 'generic', secrets: ['whsec_short'], toleranceSeconds: TOLERANCE })).toThrow(
      'webhook secrets look like whsec_<base64>',
    );
    expect(() => createVerifier({ type: 'generic', secrets: [], toleranceSeconds: TOLERANCE })).toThrow();
    expect(() => createVerifier({ type: 'generic', secrets: [''], toleranceSeconds: TOLERANCE })).toThrow();
  });
});
