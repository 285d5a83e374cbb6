import type { OAuth2Preset } from './preset';

export const zoom: OAuth2Preset = {
  type: 'oauth2',
  name: 'Zoom',
  docs: 'https://developers.zoom.us/docs/integrations/',
  authorizationUrl: 'https://zoom.us/oauth/authorize',
  tokenUrl: 'https://zoom.us/oauth/token',
  revocationUrl: 'https://zoom.us/oauth/revoke',
  clientAuth: 'client_secret_basic',
  quirks: [
    'access tokens live 1 hour; every refresh answers a new refresh token and the one used stops working (rotation)',
    'server-to-server apps use grant `account_credentials` with an `account_id`, which the vault does not support',
    'revocation answers `{"status": "success"}`',
  ],
};
