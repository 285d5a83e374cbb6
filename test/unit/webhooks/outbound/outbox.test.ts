import { decodeOutboxEntry, encodeOutboxEntry, webhookBody, type OutboxEntry } from '../../../../src/webhooks/outbound/outbox';
import { deliveryId, eventMatches, matchesAnyEvent, STANDARD_RETRY_SCHEDULE } from '../../../../src/webhooks/outbound/subscribers';

const entry: OutboxEntry = {
  id: 'msg_abc',
  type: 'token.refresh_failed',
  at: Date.parse('2026-11-23T12:00:00.000Z'),
  data: { user: 'u42', provider: 'github', reason: 'HTTP 503', failing_since: Date.parse('2026-11-23T11:55:00.000Z'), attempts: 4 },
};

describe('outbox entries', () => {
  test('round-trip through their JSON form', () => {
    expect(decodeOutboxEntry(encodeOutboxEntry(entry))).toEqual(entry);
  });

  test('what a Lua script writes with cjson (keys in any order) decodes the same', () => {
    const cjson = '{"data":{"attempts":4,"failing_since":1764888900000,"provider":"github","reason":"HTTP 503","user":"u42"},"at":1764889200000,"type":"token.refresh_failed","id":"msg_abc"}';
    expect(decodeOutboxEntry(cjson)).toMatchObject({ id: 'msg_abc', type: 'token.refresh_failed', at: 1764889200000, data: { attempts: 4 } });
  });

  test.each([
    ['not JSON', '{"id":'],
    ['an unknown type', JSON.stringify({ ...entry, type: 'token.refreshed' })],
    ['no id', JSON.stringify({ ...entry, id: 1 })],
    ['data that is a list', JSON.stringify({ ...entry, data: [] })],
    ['no time', JSON.stringify({ ...entry, at: 'now' })],
  ])('%s is not an entry', (_, text) => {
    expect(decodeOutboxEntry(text)).toBeNull();
  });

  test('the webhook body is {type, timestamp, data} with times as ISO 8601', () => {
    expect(JSON.parse(webhookBody(entry))).toEqual({
      type: 'token.refresh_failed',
      timestamp: '2026-11-23T12:00:00.000Z',
      data: { user: 'u42', provider: 'github', reason: 'HTTP 503', failing_since: '2026-11-23T11:55:00.000Z', attempts: 4 },
    });
  });
});

describe('subscribers', () => {
  test.each([
    ['*', 'key.rotated', true],
    ['token.*', 'token.revoked', true],
    ['token.*', 'key.rotated', false],
    ['token.revoked', 'token.revoked', true],
    ['token.revoked', 'token.reauth_required', false],
    ['tok*', 'token.revoked', false],
  ])('filter %s on %s: %s', (filter, type, expected) => {
    expect(eventMatches(filter, type)).toBe(expected);
  });

  test('a filter that can match nothing is caught (a typo must not silently receive nothing)', () => {
    expect(matchesAnyEvent('token.revokd')).toBe(false);
    expect(matchesAnyEvent('tokens.*')).toBe(false);
    expect(matchesAnyEvent('rewrap.*')).toBe(true);
  });

  test('delivery ids are derived from the event and the subscriber: stable, distinct per subscriber', () => {
    expect(deliveryId('msg_1', 'billing')).toBe(deliveryId('msg_1', 'billing'));
    expect(deliveryId('msg_1', 'billing')).not.toBe(deliveryId('msg_1', 'audit'));
    expect(deliveryId('msg_1', 'billing')).not.toBe(deliveryId('msg_2', 'billing'));
    expect(deliveryId('msg_1', 'billing')).toMatch(/^dlv_[A-Za-z0-9_-]{22}$/);
  });

  test('the default schedule is Standard Webhooks\': at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h', () => {
    expect(STANDARD_RETRY_SCHEDULE).toEqual([0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]);
  });
});
