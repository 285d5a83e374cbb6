import type { OAuth2Preset } from './preset';

export const dropbox: OAuth2Preset = {
  type: 'oauth2',
  name: 'Dropbox',
  docs: 'https://developers.dropbox.com/oauth-guide',
  authorizationUrl: 'https://www.dropbox.com/oauth2/authorize',
  tokenUrl: 'https://api.dropboxapi.com/oauth2/token',
  clientAuth: 'client_secret_basic',
  // Without it Dropbox issues a short-lived access token and no refresh token.
  authorizationParams: { token_access_type: 'offline' },
  quirks: [
    'refresh token only with `token_access_type=offline` (sent)',
    'access tokens live 4 h; a refresh answers no new refresh token: the first one keeps working',
    'no RFC 7009 revocation endpoint',
  ],
};
