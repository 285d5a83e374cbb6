import type { OAuth2Preset } from './preset';

export const intuit: OAuth2Preset = {
  type: 'oauth2',
  name: 'Intuit (QuickBooks Online)',
  docs: 'https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0',
  authorizationUrl: 'https://appcenter.intuit.com/connect/oauth2',
  tokenUrl: 'https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer',
  clientAuth: 'client_secret_basic',
  quirks: [
    'access tokens live 1 hour; a refresh may answer a different refresh token, which replaces the old one',
    'answers carry `x_refresh_token_expires_in` (about 100 days, extended by each refresh), after which the credential goes to `reauth_required` without a provider call; refresh tokens also have a 5-year maximum',
    'the company id (`realmId`) comes on the authorization redirect, not in the token answer',
    '`revocationUrl` not preset: Intuit\'s revoke endpoint is not known to take an RFC 7009 form body',
  ],
};
