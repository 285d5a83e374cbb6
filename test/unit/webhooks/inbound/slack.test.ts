import { createHmac } from 'node:crypto';
import { createVerifier, type InboundRequest, type InboundVerifier } from '../../../../src/webhooks/inbound/verifier';

const SECRET = 'slack-signing-secret-1';
const TOLERANCE = 300;
const NOW_MS = 1_700_000_000_000;
const NOW_S = NOW_MS / 1000;

function request(headers: Record<string, string>, body: string | Buffer, now = NOW_MS): InboundRequest {
  return { header: (name) => headers[name], rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), now };
}

function signed(payload: unknown, options: { secret?: string; timestamp?: number } = {}): InboundRequest {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const timestamp = String(options.timestamp ?? NOW_S);
  const digest = createHmac('sha256', options.secret ?? SECRET)
    .update(`v0:${timestamp}:${body}`)
    .digest('hex');
  return request({ 'x-slack-request-timestamp': timestamp, 'x-slack-signature': `v0=${digest}` }, body);
}

const callback = (event: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  token: 'XXYYZZ',
  team_id: 'T061EG9R6',
  api_app_id: 'A0PNCHHK2',
  type: 'event_callback',
  event_id: 'Ev0PV52K21',
  event_time: NOW_S,
  event,
  ...extra,
});

describe('Slack inbound verifier', () => {
  let verifier: InboundVerifier;
  beforeAll(() => {
    verifier = createVerifier({ type: 'slack', secrets: [SECRET], toleranceSeconds: TOLERANCE });
  });

  test("Slack's documented example signature verifies (its body is a form, not JSON, so it is invalid, not rejected)", () => {
    const documented = createVerifier({ type: 'slack', secrets: ['8f742231b10e8888abcd99yyyzzz85a5'], toleranceSeconds: TOLERANCE });
    // From docs.slack.dev "Verifying requests from Slack". The command is /webhook-collect: the
    // signature given there does not verify for any other body.
    const body =
      'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar' +
      '&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands' +
      '%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
    const headers = {
      'x-slack-request-timestamp': '1531420618',
      'x-slack-signature': 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
    };
    expect(documented.verify(request(headers, body, 1531420618 * 1000)).kind).toBe('invalid');
    expect(documented.verify(request(headers, `${body}x`, 1531420618 * 1000))).toEqual({ kind: 'reject', reason: 'signature does not match' });
    expect(documented.verify(request(headers, body, (1531420618 + TOLERANCE + 1) * 1000))).toEqual({
      kind: 'reject',
      reason: 'timestamp outside the tolerance',
    });
  });

  test('url_verification is answered with its challenge', () => {
    const handshake = { token: 'Jhj5dZrVaK7ZwHHjRyZWjbDl', challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P', type: 'url_verification' };
    expect(verifier.verify(signed(handshake))).toEqual({ kind: 'answer', body: { challenge: handshake.challenge } });
  });

  test('url_verification without a string challenge is invalid', () => {
    expect(verifier.verify(signed({ type: 'url_verification', challenge: 42 })).kind).toBe('invalid');
    expect(verifier.verify(signed({ type: 'url_verification' })).kind).toBe('invalid');
  });

  test('tokens_revoked revokes every user and bot, as team:id and as id', () => {
    const body = callback({ type: 'tokens_revoked', tokens: { oauth: ['UXXXXXXXX', 'UYYYYYYYY'], bot: ['BZZZZZZZZ'] } });
    expect(verifier.verify(signed(body))).toEqual({
      kind: 'revoke',
      deliveryId: 'Ev0PV52K21',
      event: 'tokens_revoked',
      accountIds: ['T061EG9R6:UXXXXXXXX', 'UXXXXXXXX', 'T061EG9R6:UYYYYYYYY', 'UYYYYYYYY', 'T061EG9R6:BZZZZZZZZ', 'BZZZZZZZZ'],
    });
  });

  test('tokens_revoked with only bot tokens, and duplicates, gives each id once', () => {
    const body = callback({ type: 'tokens_revoked', tokens: { bot: ['B1', 'B1'] } });
    expect(verifier.verify(signed(body))).toMatchObject({ kind: 'revoke', accountIds: ['T061EG9R6:B1', 'B1'] });
  });

  test('tokens_revoked without any token, or with a malformed tokens list, is invalid', () => {
    expect(verifier.verify(signed(callback({ type: 'tokens_revoked', tokens: {} }))).kind).toBe('invalid');
    expect(verifier.verify(signed(callback({ type: 'tokens_revoked', tokens: { oauth: 'U1' } }))).kind).toBe('invalid');
    expect(verifier.verify(signed(callback({ type: 'tokens_revoked' }))).kind).toBe('invalid');
  });

  test('app_uninstalled revokes the whole team', () => {
    expect(verifier.verify(signed(callback({ type: 'app_uninstalled' })))).toEqual({
      kind: 'revoke',
      deliveryId: 'Ev0PV52K21',
      event: 'app_uninstalled',
      accountIds: ['T061EG9R6'],
    });
    expect(verifier.verify(signed(callback({ type: 'app_uninstalled' }, { team_id: undefined }))).kind).toBe('invalid');
  });

  test('other events are ignored', () => {
    expect(verifier.verify(signed(callback({ type: 'message', text: 'hi' })))).toEqual({
      kind: 'ignore',
      deliveryId: 'Ev0PV52K21',
      event: 'message',
    });
    expect(verifier.verify(signed({ type: 'app_rate_limited', team_id: 'T1', minute_rate_limited: 1518467820 }))).toEqual({
      kind: 'ignore',
      deliveryId: null,
      event: 'app_rate_limited',
    });
  });

  test('an event_callback without an event_id is invalid', () => {
    expect(verifier.verify(signed(callback({ type: 'app_uninstalled' }, { event_id: undefined }))).kind).toBe('invalid');
  });

  test('a retry (X-Slack-Retry-Num) gives the same outcome, with the same delivery id to deduplicate', () => {
    const first = signed(callback({ type: 'app_uninstalled' }));
    const retry: InboundRequest = { ...first, header: (name) => (name === 'x-slack-retry-num' ? '1' : first.header(name)) };
    expect(verifier.verify(retry)).toEqual(verifier.verify(first));
  });

  test('a request signed with another secret is rejected', () => {
    expect(verifier.verify(signed(callback({ type: 'app_uninstalled' }), { secret: 'another-secret' }))).toEqual({
      kind: 'reject',
      reason: 'signature does not match',
    });
  });

  test('a body with one changed byte is rejected', () => {
    const original = signed(callback({ type: 'app_uninstalled' }));
    const tampered = Buffer.from(original.rawBody);
    tampered[tampered.indexOf('T061EG9R6') + 8] = '7'.charCodeAt(0);
    expect(verifier.verify({ ...original, rawBody: tampered })).toEqual({ kind: 'reject', reason: 'signature does not match' });
  });

  test('stale and future timestamps are rejected even with a valid signature', () => {
    for (const timestamp of [NOW_S - TOLERANCE - 1, NOW_S + TOLERANCE + 1]) {
      expect(verifier.verify(signed(callback({ type: 'app_uninstalled' }), { timestamp }))).toEqual({
        kind: 'reject',
        reason: 'timestamp outside the tolerance',
      });
    }
    expect(verifier.verify(signed(callback({ type: 'app_uninstalled' }), { timestamp: NOW_S - TOLERANCE })).kind).toBe('revoke');
  });

  test('missing or malformed signature headers are rejected', () => {
    const original = signed(callback({ type: 'app_uninstalled' }));
    for (const missing of ['x-slack-request-timestamp', 'x-slack-signature']) {
      const partial: InboundRequest = { ...original, header: (name) => (name === missing ? undefined : original.header(name)) };
      expect(verifier.verify(partial)).toEqual({ kind: 'reject', reason: 'missing signature headers' });
    }
    const v1: InboundRequest = {
      ...original,
      header: (name) => (name === 'x-slack-signature' ? original.header(name)!.replace('v0=', 'v1=') : original.header(name)),
    };
    expect(verifier.verify(v1).kind).toBe('reject');
  });

  test('while rotating, a request signed with either secret is accepted', () => {
    const rotating = createVerifier({ type: 'slack', secrets: [SECRET, 'slack-signing-secret-2'], toleranceSeconds: TOLERANCE });
    const body = callback({ type: 'app_uninstalled' });
    expect(rotating.verify(signed(body, { secret: 'slack-signing-secret-2' })).kind).toBe('revoke');
    expect(rotating.verify(signed(body)).kind).toBe('revoke');
    expect(verifier.verify(signed(body, { secret: 'slack-signing-secret-2' })).kind).toBe('reject');
  });

  test('malformed JSON after a valid signature is invalid', () => {
    expect(verifier.verify(signed('{"type":"event_callback",'))).toEqual({ kind: 'invalid', reason: 'body is not a JSON object' });
    expect(verifier.verify(signed('{"no_type":true}')).kind).toBe('invalid');
  });
});
