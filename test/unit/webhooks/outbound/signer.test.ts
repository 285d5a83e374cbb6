import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { signWebhook, verifyStandardSignature, webhookSecretBytes } from '../../../../src/webhooks/outbound/signer';

const TOLERANCE = 300;
const whsec = (bytes = 32): string => `whsec_${randomBytes(bytes).toString('base64')}`;

describe('signWebhook', () => {
  test('matches the Standard Webhooks specification example', () => {
    const key = webhookSecretBytes('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    const header = signWebhook([key], 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
    expect(header).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  test('two secrets give two space-separated signatures, one per secret, in order', () => {
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const header = signWebhook([k1, k2], 'msg_1', 1700000000, '{"a":1}');
    expect(header.split(' ')).toEqual([
      signWebhook([k1], 'msg_1', 1700000000, '{"a":1}'),
      signWebhook([k2], 'msg_1', 1700000000, '{"a":1}'),
    ]);
    expect(header.split(' ')[0]).not.toBe(header.split(' ')[1]);
  });

  test('the standardwebhooks package verifies the signature under each of two rotated secrets', () => {
    const secrets = [whsec(), whsec()];
    const body = JSON.stringify({ type: 'token.revoked', data: { user: 'u42', provider: 'github' } });
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = {
      'webhook-id': 'msg_2ZdtJ4x6c9',
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(secrets.map(webhookSecretBytes), 'msg_2ZdtJ4x6c9', timestamp, body),
    };
    for (const secret of secrets) {
      expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    }
    expect(() => new Webhook(whsec()).verify(body, headers)).toThrow();
  });

  test('refuses no secrets, a fractional timestamp and an id with spaces', () => {
    const key = randomBytes(32);
    expect(() => signWebhook([], 'msg_1', 1700000000, '{}')).toThrow();
    expect(() => signWebhook([key], 'msg_1', 1700000000.5, '{}')).toThrow();
    expect(() => signWebhook([key], 'msg 1', 1700000000, '{}')).toThrow();
  });
});

describe('verifyStandardSignature', () => {
  const secret = whsec();
  const key = webhookSecretBytes(secret);
  const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
  const nowMs = 1_700_000_000_000;
  const nowSeconds = nowMs / 1000;
  const body = Buffer.from(JSON.stringify({ account_id: '12345', note: 'héllo' }), 'utf8');

  /** Headers signed by the standardwebhooks package, an implementation independent of ours. */
  function signed(timestampSeconds = nowSeconds, signingSecret = secret) {
    return {
      id,
      timestamp: String(timestampSeconds),
      signature: new Webhook(signingSecret).sign(id, new Date(timestampSeconds * 1000), body.toString('utf8')),
    };
  }

  test("accepts the standardwebhooks package's signature and returns the id and timestamp", () => {
    expect(verifyStandardSignature([key], signed(), body, nowMs, TOLERANCE)).toEqual({ ok: true, id, timestamp: nowSeconds });
  });

  test('accepts when any key matches any v1 entry', () => {
    const other = randomBytes(32);
    const headers = signed();
    const signature = `${signWebhook([other], id, nowSeconds, body.toString('utf8'))} ${headers.signature}`;
    expect(verifyStandardSignature([other], { ...headers, signature }, body, nowMs, TOLERANCE).ok).toBe(true);
    expect(verifyStandardSignature([randomBytes(32), key], headers, body, nowMs, TOLERANCE).ok).toBe(true);
  });

  test('accepts timestamps exactly at the edges of the tolerance', () => {
    for (const ts of [nowSeconds - TOLERANCE, nowSeconds + TOLERANCE]) {
      expect(verifyStandardSignature([key], signed(ts), body, nowMs, TOLERANCE).ok).toBe(true);
    }
  });

  test('rejects a body with one flipped bit', () => {
    const flipped = Buffer.from(body);
    flipped[5] = flipped[5]! ^ 0x01;
    expect(verifyStandardSignature([key], signed(), flipped, nowMs, TOLERANCE)).toEqual({ ok: false, reason: 'signature does not match' });
  });

  test('rejects a signature made with another secret', () => {
    expect(verifyStandardSignature([key], signed(nowSeconds, whsec()), body, nowMs, TOLERANCE)).toEqual({
      ok: false,
      reason: 'signature does not match',
    });
  });

  test('rejects a stale and a future timestamp, even when correctly signed', () => {
    for (const ts of [nowSeconds - TOLERANCE - 1, nowSeconds + TOLERANCE + 1]) {
      expect(verifyStandardSignature([key], signed(ts), body, nowMs, TOLERANCE)).toEqual({
        ok: false,
        reason: 'timestamp outside the tolerance',
      });
    }
  });

  test('rejects missing headers', () => {
    const headers = signed();
    for (const missing of ['id', 'timestamp', 'signature'] as const) {
      const partial = { ...headers, [missing]: undefined };
      expect(verifyStandardSignature([key], partial, body, nowMs, TOLERANCE)).toEqual({ ok: false, reason: 'missing signature headers' });
    }
  });

  test('ignores entries of another version: a correct digest labelled v2 does not verify', () => {
    const headers = signed();
    const v2 = headers.signature.replace(/^v1,/, 'v2,');
    expect(verifyStandardSignature([key], { ...headers, signature: v2 }, body, nowMs, TOLERANCE)).toEqual({
      ok: false,
      reason: 'signature does not match',
    });
    expect(verifyStandardSignature([key], { ...headers, signature: `${v2} ${headers.signature}` }, body, nowMs, TOLERANCE).ok).toBe(true);
  });

  test('rejects malformed ids and timestamps without quoting them', () => {
    const headers = signed();
    const results = [
      verifyStandardSignature([key], { ...headers, id: 'has space' }, body, nowMs, TOLERANCE),
      verifyStandardSignature([key], { ...headers, id: 'x'.repeat(257) }, body, nowMs, TOLERANCE),
      verifyStandardSignature([key], { ...headers, timestamp: '-1700000000' }, body, nowMs, TOLERANCE),
      verifyStandardSignature([key], { ...headers, timestamp: '1.7e9' }, body, nowMs, TOLERANCE),
      verifyStandardSignature([key], { ...headers, signature: 'v1,not-base64-at-all' }, body, nowMs, TOLERANCE),
    ];
    for (const result of results) {
      expect(result.ok).toBe(false);
      const reason = result.ok ? '' : result.reason;
      expect(reason).not.toContain('space');
      expect(reason).not.toContain('not-base64');
      expect(reason).not.toContain(headers.signature);
    }
  });
});

describe('webhookSecretBytes', () => {
  test('decodes whsec_ secrets of 24 to 64 bytes, with or without padding', () => {
    const raw = randomBytes(32);
    expect(webhookSecretBytes(`whsec_${raw.toString('base64')}`)).toEqual(raw);
    expect(webhookSecretBytes(`whsec_${raw.toString('base64').replace(/=+$/, '')}`)).toEqual(raw);
    expect(webhookSecretBytes(whsec(24))).toHaveLength(24);
    expect(webhookSecretBytes(whsec(64))).toHaveLength(64);
  });

  test.each([
    ['no prefix', randomBytes(32).toString('base64')],
    ['an empty base64 part', 'whsec_'],
    ['characters outside base64', `whsec_${randomBytes(32).toString('base64').slice(0, -4)}!!!!`],
    ['url-safe base64', `whsec_${'-_'.repeat(16)}`],
    ['padding in the middle', `whsec_AAAA=AAA${randomBytes(30).toString('base64')}`],
    ['too short (23 bytes)', whsec(23)],
    ['too long (65 bytes)', whsec(65)],
  ])('refuses %s', (_name, secret) => {
    expect(() => webhookSecretBytes(secret)).toThrow('webhook secrets look like whsec_<base64>');
  });
});
