import { hostParam } from './params';
import type { OAuth2Preset } from './preset';

const base = 'https://{domain}/oauth2/{authServer}/v1';

export const okta: OAuth2Preset = {
  type: 'oauth2',
  name: 'Okta (custom authorization server)',
  docs: 'https://developer.okta.com/docs/api/openapi/okta-oauth/oauth/tag/CustomAS/',
  params: {
    domain: hostParam('Okta org or custom domain, e.g. dev-123456.okta.com'),
    authServer: {
      description: 'custom authorization server id; every org has one named `default`',
      default: 'default',
      pattern: /^[A-Za-z0-9]{1,64}$/,
    },
  },
  authorizationUrl: `${base}/authorize`,
  tokenUrl: `${base}/token`,
  revocationUrl: `${base}/revoke`,
  deviceAuthorizationUrl: `${base}/device/authorize`,
  userinfoUrl: `${base}/userinfo`,
  clientAuth: 'client_secret_basic',
  quirks: [
    'URLs hold the Okta domain (`params.domain`, required) and the authorization server (`params.authServer`, default `default`); the org authorization server (`/oauth2/v1/…`) needs the URLs in the entry',
    'refresh token only with the `offline_access` scope and the refresh token grant enabled for the app',
  ],
};
