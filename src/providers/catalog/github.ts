import { errorCodes } from '../hooks';
import type { OAuth2Preset } from './preset';

export const github: OAuth2Preset = {
  type: 'oauth2',
  name: 'GitHub',
  docs: 'https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps',
  authorizationUrl: 'https://github.com/login/oauth/authorize',
  tokenUrl: 'https://github.com/login/oauth/access_token',
  deviceAuthorizationUrl: 'https://github.com/login/device/code',
  userinfoUrl: 'https://api.github.com/user',
  accountIdField: 'id',
  clientAuth: 'client_secret_post',
  inboundVerifier: 'github',
  quirks: [
    'answers form-encoded unless asked for JSON (the vault sends `Accept: application/json` and reads both)',
    'errors come with HTTP 200: `bad_refresh_token`, `bad_verification_code`, `incorrect_client_credentials`',
    'OAuth App tokens never expire and have no refresh token; GitHub App user tokens expire after 8 h and their refresh tokens after 6 months (`refresh_token_expires_in`)',
    'answers `scope` comma-separated',
    'no RFC 7009 revocation endpoint',
  ],
  hooks: errorCodes({
    bad_refresh_token: 'invalid_grant',
    bad_verification_code: 'invalid_grant',
    incorrect_client_credentials: 'invalid_client',
  }),
};
