import type { OAuth2Preset } from './preset';

export const google: OAuth2Preset = {
  type: 'oauth2',
  name: 'Google',
  docs: 'https://developers.google.com/identity/protocols/oauth2/web-server',
  authorizationUrl: 'https://accounts.google.com/o/oauth2/v2/auth',
  tokenUrl: 'https://oauth2.googleapis.com/token',
  revocationUrl: 'https://oauth2.googleapis.com/revoke',
  deviceAuthorizationUrl: 'https://oauth2.googleapis.com/device/code',
  userinfoUrl: 'https://openidconnect.googleapis.com/v1/userinfo',
  clientAuth: 'client_secret_post',
  scopes: ['openid', 'email'],
  // Without access_type=offline there is no refresh token; without prompt=consent there is one
  // only the first time a user consents, so a reconnect would store a credential that cannot refresh.
  authorizationParams: { access_type: 'offline', prompt: 'consent' },
  quirks: [
    'refresh token only with `access_type=offline`, and only on first consent unless `prompt=consent` (both sent)',
    'refresh tokens do not rotate; apps in "testing" status get refresh tokens that die after 7 days (`invalid_grant`)',
  ],
};
