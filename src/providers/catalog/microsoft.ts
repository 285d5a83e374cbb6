import type { OAuth2Preset } from './preset';

const base = 'https://login.microsoftonline.com/{tenant}/oauth2/v2.0';

export const microsoft: OAuth2Preset = {
  type: 'oauth2',
  name: 'Microsoft identity platform (Entra ID, Microsoft accounts)',
  docs: 'https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow',
  params: {
    tenant: {
      description: 'directory (tenant) id or domain, or common, organizations, consumers',
      default: 'common',
      pattern: /^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/,
    },
  },
  authorizationUrl: `${base}/authorize`,
  tokenUrl: `${base}/token`,
  deviceAuthorizationUrl: `${base}/devicecode`,
  userinfoUrl: 'https://graph.microsoft.com/oidc/userinfo',
  clientAuth: 'client_secret_post',
  scopes: ['openid', 'offline_access', 'https://graph.microsoft.com/User.Read'],
  quirks: [
    'URLs hold the tenant (`params.tenant`, default `common`)',
    'refresh token only with the `offline_access` scope',
    'rotates refresh tokens on most refreshes; they expire after 90 days of disuse',
    'no RFC 7009 revocation endpoint',
  ],
};
