import type { OAuth2Preset } from './preset';

export const box: OAuth2Preset = {
  type: 'oauth2',
  name: 'Box',
  docs: 'https://developer.box.com/guides/authentication/tokens/refresh/',
  authorizationUrl: 'https://account.box.com/api/oauth2/authorize',
  tokenUrl: 'https://api.box.com/oauth2/token',
  revocationUrl: 'https://api.box.com/oauth2/revoke',
  clientAuth: 'client_secret_post',
  // Each refresh token is valid for one use within 60 days of being issued.
  refreshTokenLifetimeSeconds: 60 * 24 * 3600,
  quirks: [
    'access tokens live 60 minutes',
    'refresh tokens are single-use: each refresh answers a new one and invalidates the one sent',
    'a refresh token not used within 60 days is dead (`refreshTokenLifetimeSeconds`): the user must authorize again',
  ],
};
