import { randomBytes } from 'node:crypto';
import type { OAuth2Credential } from '../../src/credentials/credential';
import { Secret } from '../../src/secret';

/** The credential shapes the suites store: sizes of real providers' tokens. */
export const DAY_MS = 86_400_000;

function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

function oauth2(access: string, refresh: string, idToken: string | null, scope: string, now: number, lifetimeMs: number): OAuth2Credential {
  return {
    type: 'oauth2',
    accessToken: new Secret(access),
    refreshToken: new Secret(refresh),
    idToken: idToken ? new Secret(idToken) : null,
    tokenType: 'bearer',
    scope,
    expiresAt: now + lifetimeMs,
    refreshExpiresAt: null,
    issuedAt: now,
    accountId: String(10_000_000 + Math.floor(Math.random() * 80_000_000)),
    metadata: null,
  };
}

/** GitHub-style opaque tokens: 40-character access token, 80-character refresh token (~330 B sealed plaintext). */
export function githubLike(now = Date.now(), lifetimeMs = DAY_MS): OAuth2Credential {
  return oauth2(`ghu_${hex(18)}`, `ghr_${hex(38)}`, null, 'repo', now, lifetimeMs);
}

/** Google-style: ~220-character access token, ~100-character refresh token, ~1 KB id_token. */
export function googleLike(now = Date.now(), lifetimeMs = DAY_MS): OAuth2Credential {
  return oauth2(`ya29.${hex(108)}`, `1//${hex(49)}`, `eyJ${hex(500)}`, 'openid email profile', now, lifetimeMs);
}
