import { z } from 'zod';
import { CredentialUnreadableError } from '../errors';
import { Secret } from '../secret';

/**
 * A credential as the vault holds it in memory. Token material is always a Secret, so logging a
 * credential by mistake prints "[redacted]".
 */
export interface OAuth2Credential {
  type: 'oauth2';
  accessToken: Secret;
  refreshToken: Secret | null;
  idToken: Secret | null;
  tokenType: string;
  scope: string | null;
  /** ms since the epoch; null when the provider gave no expiry. */
  expiresAt: number | null;
  /** When this access token was obtained (ms); its lifetime is expiresAt − issuedAt. */
  issuedAt: number;
  /** ms since the epoch when the refresh token dies, when the provider said or the preset knows. */
  refreshExpiresAt: number | null;
  accountId: string | null;
  metadata: Record<string, unknown> | null;
}

export interface OAuth1Credential {
  type: 'oauth1';
  oauthToken: Secret;
  oauthTokenSecret: Secret;
  issuedAt: number;
  accountId: string | null;
  metadata: Record<string, unknown> | null;
}

export type Credential = OAuth2Credential | OAuth1Credential;

/**
 * The plaintext that is sealed: JSON with the OAuth wire names and a payload version `v`, so a
 * later version can read records written by this one.
 */
const PAYLOAD_VERSION = 1;
const common = {
  v: z.literal(PAYLOAD_VERSION),
  issued_at: z.number(),
  account_id: z.string().nullable(),
  metadata: z.record(z.string(), z.unknown()).nullable(),
};
const payloadSchema = z.discriminatedUnion('type', [
  z.object({
    ...common,
    type: z.literal('oauth2'),
    access_token: z.string(),
    refresh_token: z.string().nullable(),
    id_token: z.string().nullable(),
    token_type: z.string(),
    scope: z.string().nullable(),
    expires_at: z.number().nullable(),
    // Added after the first records were written: absent means unknown.
    refresh_expires_at: z.number().nullable().optional(),
  }),
  z.object({ ...common, type: z.literal('oauth1'), oauth_token: z.string(), oauth_token_secret: z.string() }),
]);
type Payload = z.infer<typeof payloadSchema>;

export function encodeCredential(credential: Credential): Buffer {
  const base = { v: PAYLOAD_VERSION, issued_at: credential.issuedAt, account_id: credential.accountId, metadata: credential.metadata } as const;
  const payload: Payload =
    credential.type === 'oauth2'
      ? {
          ...base,
          type: 'oauth2',
          access_token: credential.accessToken.reveal(),
          refresh_token: credential.refreshToken?.reveal() ?? null,
          id_token: credential.idToken?.reveal() ?? null,
          token_type: credential.tokenType,
          scope: credential.scope,
          expires_at: credential.expiresAt,
          refresh_expires_at: credential.refreshExpiresAt,
        }
      : { ...base, type: 'oauth1', oauth_token: credential.oauthToken.reveal(), oauth_token_secret: credential.oauthTokenSecret.reveal() };
  return Buffer.from(JSON.stringify(payload), 'utf8');
}

/** Reads an opened record; a payload this version cannot read is unreadable, never guessed at. */
export function decodeCredential(plaintext: Buffer): Credential {
  let json: unknown;
  try {
    json = JSON.parse(plaintext.toString('utf8'));
  } catch {
    throw new CredentialUnreadableError('format');
  }
  const parsed = payloadSchema.safeParse(json);
  if (!parsed.success) throw new CredentialUnreadableError('format');
  const p = parsed.data;
  // Literal objects, no spreads: on Node 20's V8 a `{ ...base, a, b }` literal takes a slow path
  // (about 1.5 µs a property), and this runs on every GET.
  if (p.type === 'oauth1') {
    return {
      type: 'oauth1',
      oauthToken: new Secret(p.oauth_token),
      oauthTokenSecret: new Secret(p.oauth_token_secret),
      issuedAt: p.issued_at,
      accountId: p.account_id,
      metadata: p.metadata,
    };
  }
  return {
    type: 'oauth2',
    accessToken: new Secret(p.access_token),
    refreshToken: p.refresh_token === null ? null : new Secret(p.refresh_token),
    idToken: p.id_token === null ? null : new Secret(p.id_token),
    tokenType: p.token_type,
    scope: p.scope,
    expiresAt: p.expires_at,
    refreshExpiresAt: p.refresh_expires_at ?? null,
    issuedAt: p.issued_at,
    accountId: p.account_id,
    metadata: p.metadata,
  };
}

/** The user id app tokens (client credentials) are kept under; user ids starting with `_` are reserved for it. */
export const APP_USER = '_app';
