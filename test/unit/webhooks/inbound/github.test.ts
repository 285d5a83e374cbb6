import { createHmac } from 'node:crypto';
import { createVerifier, type InboundRequest, type InboundVerifier } from '../../../../src/webhooks/inbound/verifier';

const SECRET = 'gh-webhook-secret-1';
const NOW_MS = 1_700_000_000_000;
const DELIVERY = '72d3162e-cc78-11e3-81ab-4c9367dc0958';

function request(headers: Record<string, string>, body: string | Buffer, now = NOW_MS): InboundRequest {
  return { header: (name) => headers[name], rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), now };
}

const sign = (secret: string, body: string | Buffer): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

function delivery(event: string, payload: unknown, options: { secret?: string; deliveryId?: string } = {}): InboundRequest {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return request(
    {
      'x-github-event': event,
      'x-github-delivery': options.deliveryId ?? DELIVERY,
      'x-hub-signature-256': sign(options.secret ?? SECRET, body),
    },
    body,
  );
}

const revoked = { action: 'revoked', sender: { login: 'octocat', id: 583231, type: 'User' } };

describe('GitHub inbound verifier', () => {
  let verifier: InboundVerifier;
  beforeAll(() => {
    verifier = createVerifier({ type: 'github', secrets: [SECRET], toleranceSeconds: 300 });
  });

  test("GitHub's documented example signature verifies (its body is not JSON, so it is invalid, not rejected)", () => {
    const documented = createVerifier({ type: 'github', secrets: ["It's a Secret to Everybody"], toleranceSeconds: 300 });
    const signature = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
    const headers = { 'x-hub-signature-256': signature, 'x-github-event': 'ping', 'x-github-delivery': DELIVERY };
    expect(documented.verify(request(headers, 'Hello, World!')).kind).toBe('invalid');
    const wrongDigit = { ...headers, 'x-hub-signature-256': signature.replace(/7$/, '8') };
    expect(documented.verify(request(wrongDigit, 'Hello, World!'))).toEqual({ kind: 'reject', reason: 'signature does not match' });
  });

  test('github_app_authorization revoked revokes the sender by id and login', () => {
    expect(verifier.verify(delivery('github_app_authorization', revoked))).toEqual({
      kind: 'revoke',
      deliveryId: DELIVERY,
      event: 'github_app_authorization.revoked',
      accountIds: ['583231', 'octocat'],
    });
  });

  test('a revocation with only a login revokes that login', () => {
    const outcome = verifier.verify(delivery('github_app_authorization', { action: 'revoked', sender: { login: 'octocat' } }));
    expect(outcome).toMatchObject({ kind: 'revoke', accountIds: ['octocat'] });
  });

  test('a revocation whose sender has neither id nor login is invalid', () => {
    expect(verifier.verify(delivery('github_app_authorization', { action: 'revoked', sender: {} })).kind).toBe('invalid');
    expect(verifier.verify(delivery('github_app_authorization', { action: 'revoked' })).kind).toBe('invalid');
  });

  test('ping is answered and ignored', () => {
    const ping = { zen: 'Keep it logically awesome.', hook_id: 1 };
    expect(verifier.verify(delivery('ping', ping))).toEqual({ kind: 'ignore', deliveryId: DELIVERY, event: 'ping' });
  });

  test('other events and actions are ignored, named event.action', () => {
    expect(verifier.verify(delivery('installation', { action: 'deleted', sender: revoked.sender }))).toEqual({
      kind: 'ignore',
      deliveryId: DELIVERY,
      event: 'installation.deleted',
    });
    expect(verifier.verify(delivery('push', { ref: 'refs/heads/main' }))).toMatchObject({ kind: 'ignore', event: 'push' });
  });

  test('a request signed with another secret is rejected', () => {
    expect(verifier.verify(delivery('github_app_authorization', revoked, { secret: 'not-the-secret' }))).toEqual({
      kind: 'reject',
      reason: 'signature does not match',
    });
  });

  test('a body with one changed byte is rejected', () => {
    const signed = delivery('github_app_authorization', revoked);
    const tampered = Buffer.from(signed.rawBody.toString('utf8').replace('583231', '583232'), 'utf8');
    expect(verifier.verify({ ...signed, rawBody: tampered })).toEqual({ kind: 'reject', reason: 'signature does not match' });
  });

  test('a missing or malformed signature header is rejected', () => {
    const signed = delivery('github_app_authorization', revoked);
    const without: InboundRequest = { ...signed, header: (name) => (name === 'x-hub-signature-256' ? undefined : signed.header(name)) };
    expect(verifier.verify(without)).toEqual({ kind: 'reject', reason: 'missing signature headers' });
    const sha1: InboundRequest = { ...signed, header: (name) => (name === 'x-hub-signature-256' ? 'sha1=abc' : signed.header(name)) };
    expect(verifier.verify(sha1).kind).toBe('reject');
  });

  test('a verified request without a delivery id or an event name is invalid', () => {
    const signed = delivery('github_app_authorization', revoked);
    for (const missing of ['x-github-delivery', 'x-github-event']) {
      const partial: InboundRequest = { ...signed, header: (name) => (name === missing ? undefined : signed.header(name)) };
      expect(verifier.verify(partial).kind).toBe('invalid');
    }
  });

  test('GitHub signs no timestamp: an old delivery still verifies (the endpoint deduplicates it)', () => {
    const old = { ...delivery('github_app_authorization', revoked), now: NOW_MS + 365 * 24 * 3600 * 1000 };
    expect(verifier.verify(old).kind).toBe('revoke');
  });

  test('while rotating, a request signed with either secret is accepted', () => {
    const rotating = createVerifier({ type: 'github', secrets: [SECRET, 'gh-webhook-secret-2'], toleranceSeconds: 300 });
    expect(rotating.verify(delivery('github_app_authorization', revoked, { secret: 'gh-webhook-secret-2' })).kind).toBe('revoke');
    expect(rotating.verify(delivery('github_app_authorization', revoked)).kind).toBe('revoke');
    expect(verifier.verify(delivery('github_app_authorization', revoked, { secret: 'gh-webhook-secret-2' })).kind).toBe('reject');
  });

  test('malformed JSON after a valid signature is invalid', () => {
    expect(verifier.verify(delivery('github_app_authorization', '{"action":"revoked",')).kind).toBe('invalid');
    expect(verifier.verify(delivery('ping', 'null')).kind).toBe('invalid');
  });
});
