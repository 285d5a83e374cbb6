import { z } from 'zod';
import type { ProviderConfig } from '../config/schema';
import { timestamp } from '../http/openapi/common';
import type { CredentialMeta } from '../store/credential-store';
import type { Credential } from './credential';

/**
 * What the API shows. The public view (PUT answers, lists) is built from clear metadata and
 * never holds a token; the token view (GET of one credential) is the only place token values
 * leave the vault, and never includes the refresh token. The builders return the types of the
 * schemas openapi.yaml is generated from, so the document and the answers cannot drift apart.
 */

const identity = {
  user: z.string(),
  provider: z.string(),
  version: z.number().int().meta({ description: 'The record version; the ETag of the record.' }),
};

const publicCommon = {
  ...identity,
  state: z.enum(['active', 'reauth_required']).meta({ description: '`reauth_required`: the provider rejected the refresh token; the user must connect again.' }),
  account_id: z.string().nullable(),
  created_at: timestamp,
  updated_at: timestamp,
};

export const publicViewSchema = z
  .discriminatedUnion('type', [
    z
      .strictObject({ ...publicCommon, type: z.literal('oauth2'), expires_at: timestamp.nullable(), scope: z.string().nullable() })
      .meta({ id: 'OAuth2Credential' }),
    z.strictObject({ ...publicCommon, type: z.literal('oauth1') }).meta({ id: 'OAuth1Credential' }),
  ])
  .meta({ id: 'Credential', description: 'A stored credential without its token values.' });
export type PublicView = z.infer<typeof publicViewSchema>;

const tokenExtras = {
  account_id: z.string().optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
};

export const tokenViewSchema = z
  .discriminatedUnion('type', [
    z
      .strictObject({
        ...identity,
        type: z.literal('oauth2'),
        access_token: z.string(),
        token_type: z.string(),
        expires_at: timestamp.nullable(),
        expires_in: z.number().int().min(0).nullable().meta({ description: 'Whole seconds left; null when the expiry is unknown.' }),
        scope: z.string().nullable(),
        ...tokenExtras,
      })
      .meta({ id: 'OAuth2Token' }),
    z
      .strictObject({
        ...identity,
        type: z.literal('oauth1'),
        oauth_token: z.string(),
        oauth_token_secret: z.string().optional().meta({ description: 'Left out when the provider is `signOnly`.' }),
        ...tokenExtras,
      })
      .meta({ id: 'OAuth1Token' }),
  ])
  .meta({ id: 'Token', description: 'A usable token; never the refresh token or the ID token.' });
export type TokenView = z.infer<typeof tokenViewSchema>;

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

export function publicView(meta: CredentialMeta): PublicView {
  const head = { user: meta.user, provider: meta.provider };
  const tail = { account_id: meta.accountId, created_at: iso(meta.createdAt), updated_at: iso(meta.updatedAt) };
  if (meta.type === 'oauth1') return { ...head, type: 'oauth1', state: meta.state, version: meta.version, ...tail };
  return { ...head, type: 'oauth2', state: meta.state, version: meta.version, expires_at: isoOrNull(meta.expiresAt), scope: meta.scope, ...tail };
}

export function tokenView(meta: CredentialMeta, credential: Credential, provider: ProviderConfig, now: number): TokenView {
  // Built by assignment, not spreads: this runs on every GET, and on Node 20's V8 a literal with
  // spreads takes a slow path (about 1.5 µs a property).
  let view: TokenView;
  if (credential.type === 'oauth1') {
    view = { user: meta.user, provider: meta.provider, version: meta.version, type: 'oauth1', oauth_token: credential.oauthToken.reveal() };
    if (!(provider.type === 'oauth1' && provider.signOnly)) view.oauth_token_secret = credential.oauthTokenSecret.reveal();
  } else {
    view = {
      user: meta.user,
      provider: meta.provider,
      version: meta.version,
      type: 'oauth2',
      access_token: credential.accessToken.reveal(),
      token_type: credential.tokenType,
      expires_at: isoOrNull(credential.expiresAt),
      expires_in: credential.expiresAt === null ? null : Math.max(0, Math.floor((credential.expiresAt - now) / 1000)),
      scope: credential.scope,
    };
  }
  if (credential.accountId !== null) view.account_id = credential.accountId;
  if (credential.metadata !== null) view.metadata = credential.metadata;
  return view;
}
