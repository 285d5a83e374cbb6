import { refreshAt } from '../../../src/refresh/schedule';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const issuedAt = Date.parse('2026-11-23T12:00:00.000Z');
const settings = { skewSeconds: 300, jitterSeconds: 30 };
const DEFAULT_LIFETIME_SECONDS = 3600;

/** Random values across [0, 1), both ends included. */
const RANDOMS = [0, 0.001, 0.25, 0.5, 0.75, 0.999, 0.9999999999];

describe('refreshAt', () => {
  test('a one-hour token refreshes between 330 s and 300 s before it expires', () => {
    const expiresAt = issuedAt + HOUR;
    for (const r of RANDOMS) {
      const at = refreshAt(issuedAt, expiresAt, DEFAULT_LIFETIME_SECONDS, settings, () => r);
      expect(at).toBeGreaterThanOrEqual(expiresAt - 330 * SECOND);
      expect(at).toBeLessThanOrEqual(expiresAt - 300 * SECOND);
    }
  });

  test('a one-hour token with the default random source stays in the window', () => {
    const expiresAt = issuedAt + HOUR;
    for (let i = 0; i < 1000; i++) {
      const at = refreshAt(issuedAt, expiresAt, DEFAULT_LIFETIME_SECONDS, settings);
      expect(at).toBeGreaterThanOrEqual(expiresAt - 330 * SECOND);
      expect(at).toBeLessThanOrEqual(expiresAt - 300 * SECOND);
    }
  });

  test('random 0 refreshes exactly skew seconds before expiry', () => {
    const expiresAt = issuedAt + HOUR;
    expect(refreshAt(issuedAt, expiresAt, DEFAULT_LIFETIME_SECONDS, settings, () => 0)).toBe(expiresAt - 300 * SECOND);
  });

  test('random 0.999 refreshes almost the whole jitter earlier', () => {
    const expiresAt = issuedAt + HOUR;
    expect(refreshAt(issuedAt, expiresAt, DEFAULT_LIFETIME_SECONDS, settings, () => 0.999)).toBe(expiresAt - 300 * SECOND - 29_970);
  });

  test('a ten-minute token refreshes at 80% of its life, not at once', () => {
    const expiresAt = issuedAt + 10 * MINUTE;
    for (const r of RANDOMS) {
      expect(refreshAt(issuedAt, expiresAt, DEFAULT_LIFETIME_SECONDS, settings, () => r)).toBe(issuedAt + 8 * MINUTE);
    }
  });

  test('a two-minute token is never refreshed at or before issuance', () => {
    const expiresAt = issuedAt + 2 * MINUTE;
    for (const r of RANDOMS) {
      const at = refreshAt(issuedAt, expiresAt, DEFAULT_LIFETIME_SECONDS, settings, () => r);
      expect(at).toBeGreaterThan(issuedAt);
      expect(at).toBeLessThan(expiresAt);
      expect(at).toBe(issuedAt + 96 * SECOND);
    }
  });

  test('a token without expiry is scheduled as if it lived defaultLifetimeSeconds', () => {
    const assumedExpiry = issuedAt + 8 * HOUR;
    expect(refreshAt(issuedAt, null, 8 * 3600, settings, () => 0)).toBe(assumedExpiry - 300 * SECOND);
    expect(refreshAt(issuedAt, null, 8 * 3600, settings, () => 0.999)).toBe(assumedExpiry - 300 * SECOND - 29_970);
  });

  test('a token without expiry and a short default lifetime refreshes at 80% of that lifetime', () => {
    expect(refreshAt(issuedAt, null, 120, settings, () => 0.5)).toBe(issuedAt + 96 * SECOND);
  });

  test('zero skew and jitter refresh at expiry for a long-lived token', () => {
    const expiresAt = issuedAt + HOUR;
    expect(refreshAt(issuedAt, expiresAt, DEFAULT_LIFETIME_SECONDS, { skewSeconds: 0, jitterSeconds: 0 }, () => 0.999)).toBe(expiresAt);
  });

  test('a larger jitter widens the window by that much', () => {
    const expiresAt = issuedAt + 24 * HOUR;
    const wide = { skewSeconds: 600, jitterSeconds: 3600 };
    expect(refreshAt(issuedAt, expiresAt, DEFAULT_LIFETIME_SECONDS, wide, () => 0)).toBe(expiresAt - 600 * SECOND);
    expect(refreshAt(issuedAt, expiresAt, DEFAULT_LIFETIME_SECONDS, wide, () => 0.5)).toBe(expiresAt - 600 * SECOND - 1800 * SECOND);
  });
});
