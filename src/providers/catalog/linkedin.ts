import type { OAuth2Preset } from './preset';

export const linkedin: OAuth2Preset = {
  type: 'oauth2',
  name: 'LinkedIn',
  docs: 'https://learn.microsoft.com/en-us/linkedin/shared/authentication/programmatic-refresh-tokens',
  authorizationUrl: 'https://www.linkedin.com/oauth/v2/authorization',
  tokenUrl: 'https://www.linkedin.com/oauth/v2/accessToken',
  revocationUrl: 'https://www.linkedin.com/oauth/v2/revoke',
  clientAuth: 'client_secret_post',
  quirks: [
    'access tokens live 60 days; refresh tokens only for apps approved for programmatic refresh tokens',
    'a refresh token lives 365 days from the first authorization and refreshing does not extend it: answers carry `refresh_token_expires_in` (the time left), after which the credential goes to `reauth_required` without a provider call',
  ],
};
