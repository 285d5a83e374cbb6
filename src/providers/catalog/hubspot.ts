import type { OAuth2Preset } from './preset';

export const hubspot: OAuth2Preset = {
  type: 'oauth2',
  name: 'HubSpot',
  docs: 'https://developers.hubspot.com/docs/api-reference/auth-oauth-v3/guide',
  authorizationUrl: 'https://app.hubspot.com/oauth/authorize',
  tokenUrl: 'https://api.hubapi.com/oauth/v3/token',
  clientAuth: 'client_secret_post',
  quirks: [
    'access tokens live 30 minutes',
    'the v3 token endpoint takes every parameter in the body; v1 (`/oauth/v1/token`) is deprecated from 16 February 2027',
    'no RFC 7009 revocation endpoint (refresh tokens are deleted through HubSpot\'s own token API)',
  ],
};
