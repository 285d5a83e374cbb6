import type { OAuth2Preset } from './preset';

export const xero: OAuth2Preset = {
  type: 'oauth2',
  name: 'Xero',
  docs: 'https://developer.xero.com/documentation/guides/oauth2/auth-flow/',
  authorizationUrl: 'https://login.xero.com/identity/connect/authorize',
  tokenUrl: 'https://identity.xero.com/connect/token',
  revocationUrl: 'https://identity.xero.com/connect/revocation',
  userinfoUrl: 'https://identity.xero.com/connect/userinfo',
  clientAuth: 'client_secret_basic',
  // Unused refresh tokens expire after 60 days; each refresh issues a new one.
  refreshTokenLifetimeSeconds: 60 * 24 * 3600,
  quirks: [
    'refresh token only with the `offline_access` scope',
    'access tokens live 30 minutes; every refresh answers a new refresh token (rotation); the old one still works for a 30-minute grace period',
    'unused refresh tokens expire after 60 days (`refreshTokenLifetimeSeconds`)',
    'API calls need a `Xero-Tenant-Id` header, found with `GET https://api.xero.com/connections`',
  ],
};
