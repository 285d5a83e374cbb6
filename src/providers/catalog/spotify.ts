import type { OAuth2Preset } from './preset';

export const spotify: OAuth2Preset = {
  type: 'oauth2',
  name: 'Spotify',
  docs: 'https://developer.spotify.com/documentation/web-api/tutorials/refreshing-tokens',
  authorizationUrl: 'https://accounts.spotify.com/authorize',
  tokenUrl: 'https://accounts.spotify.com/api/token',
  clientAuth: 'client_secret_basic',
  quirks: [
    'access tokens live 1 hour; a refresh may or may not answer a new refresh token (without one the old one is kept)',
    'refresh tokens expire 6 months after the user authorized; refreshing does not extend that (`invalid_grant`, then reauthorization)',
    '`grant: client_credentials` gives app tokens for endpoints without user data',
    'no RFC 7009 revocation endpoint',
  ],
};
