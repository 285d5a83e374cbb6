import type { OAuth2Preset } from './preset';

export const atlassian: OAuth2Preset = {
  type: 'oauth2',
  name: 'Atlassian Cloud (Jira, Confluence), OAuth 2.0 3LO',
  docs: 'https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/',
  authorizationUrl: 'https://auth.atlassian.com/authorize',
  tokenUrl: 'https://auth.atlassian.com/oauth/token',
  userinfoUrl: 'https://api.atlassian.com/me',
  accountIdField: 'account_id',
  clientAuth: 'client_secret_post',
  // The consent screen names the API gateway as the audience; without prompt=consent a
  // returning user may not be asked again for scopes added since.
  authorizationParams: { audience: 'api.atlassian.com', prompt: 'consent' },
  // Rotating refresh tokens expire after 90 days without use; each rotation restarts the count.
  refreshTokenLifetimeSeconds: 90 * 24 * 3600,
  quirks: [
    'authorization URL needs `audience=api.atlassian.com` and `prompt=consent` (both sent)',
    'refresh token only with the `offline_access` scope',
    'rotating refresh tokens: each refresh invalidates the one used; reusing an old one outside a 10-minute leeway invalidates the whole family',
    'refresh tokens expire after 90 days unused (`refreshTokenLifetimeSeconds`) and 365 days after consent however often they are used',
    'access tokens work only through `https://api.atlassian.com/ex/{product}/{cloudid}/…`, not on the site URL',
    'no RFC 7009 revocation endpoint',
  ],
};
