import type { OAuth2Preset } from './preset';

export const reddit: OAuth2Preset = {
  type: 'oauth2',
  name: 'Reddit',
  docs: 'https://github.com/reddit-archive/reddit/wiki/OAuth2',
  authorizationUrl: 'https://www.reddit.com/api/v1/authorize',
  tokenUrl: 'https://www.reddit.com/api/v1/access_token',
  revocationUrl: 'https://www.reddit.com/api/v1/revoke_token',
  clientAuth: 'client_secret_basic',
  // "temporary" (the default) issues no refresh token.
  authorizationParams: { duration: 'permanent' },
  quirks: [
    'refresh token only with `duration=permanent` (sent)',
    'access tokens live 1 hour; a refresh answers no new refresh token: the first one keeps working until revoked',
    'API calls go to `https://oauth.reddit.com`, not `www.reddit.com`',
    '"application only" tokens: `grant: client_credentials`',
  ],
};
