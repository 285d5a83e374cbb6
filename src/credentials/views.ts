import type { ProviderConfig } from '../config/schema';
import type { CredentialMeta } from '../store/credential-store';
import type { Credential } from './credential';

/**
 * What the API shows. The public view (PUT answers, lists) is built from clear metadata and
 * never holds a token; the token view (GET of one credential) is the only place token values
 * leave the vault, and never includes the refresh token.
 */
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function publicView(meta: CredentialMeta) {
  return {
    user: meta.user,
    provider: meta.provider,
    type: meta.type,
    state: meta.state,
    version: meta.version,
    ...(meta.type === 'oauth2' ? { expires_at: iso(meta.expiresAt), scope: meta.scope } : {}),
    account_id: meta.accountId,
    created_at: iso(meta.createdAt),
    updated_at: iso(meta.updatedAt),
  };
}

export function tokenView(meta: CredentialMeta, credential: Credential, provider: ProviderConfig, now: number) {
  const common = { user: meta.user, provider: meta.provider, version: meta.version };
  const extra = {
    ...(credential.accountId === null ? {} : { account_id: credential.accountId }),
    ...(credential.metadata === null ? {} : { metadata: credential.metadata }),
  };
  if (credential.type === 'oauth1') {
    const signOnly = provider.type === 'oauth1' && provider.signOnly;
    return {
      ...common,
      type: 'oauth1' as const,
      oauth_token: credential.oauthToken.reveal(),
      ...(signOnly ? {} : { oauth_token_secret: credential.oauthTokenSecret.reveal() }),
      ...extra,
    };
  }
  return {
    ...common,
    type: 'oauth2' as const,
    access_token: credential.accessToken.reveal(),
    token_type: credential.tokenType,
    expires_at: iso(credential.expiresAt),
    expires_in: credential.expiresAt === null ? null : Math.max(0, Math.floor((credential.expiresAt - now) / 1000)),
    scope: credential.scope,
    ...extra,
  };
}
