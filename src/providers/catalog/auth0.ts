import { hostParam } from './params';
import type { OAuth2Preset } from './preset';

export const auth0: OAuth2Preset = {
  type: 'oauth2',
  name: 'Auth0',
  docs: 'https://auth0.com/docs/secure/tokens/refresh-tokens',
  params: {
    domain: hostParam('tenant or custom domain, e.g. acme.eu.auth0.com'),
  },
  authorizationUrl: 'https://{domain}/authorize',
  tokenUrl: 'https://{domain}/oauth/token',
  revocationUrl: 'https://{domain}/oauth/revoke',
  deviceAuthorizationUrl: 'https://{domain}/oauth/device/code',
  userinfoUrl: 'https://{domain}/userinfo',
  clientAuth: 'client_secret_post',
  quirks: [
    'URLs hold the tenant domain (`params.domain`, required)',
    'refresh token only with the `offline_access` scope and "Allow Offline Access" on the API',
    'refresh-token rotation (with reuse detection after an overlap period), idle and maximum lifetimes are per-application settings',
    'the revocation endpoint revokes refresh tokens only',
  ],
};
