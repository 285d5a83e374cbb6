import type { ProviderHooks } from '../hooks';
import type { OAuth2Preset } from './preset';

const hooks: ProviderHooks = {
  tokenResponse(body) {
    // A dead refresh token is {"status": 400, "message": "Invalid refresh token", "error": "Bad Request"}:
    // the RFC code is only in the message.
    if (body.status === 400 && body.message === 'Invalid refresh token') return { ...body, error: 'invalid_grant' };
    // Scopes come as a JSON array, not a space-separated string.
    if (Array.isArray(body.scope) && body.scope.every((scope) => typeof scope === 'string')) return { ...body, scope: body.scope.join(' ') };
    return body;
  },
};

export const twitch: OAuth2Preset = {
  type: 'oauth2',
  name: 'Twitch',
  docs: 'https://dev.twitch.tv/docs/authentication/refresh-tokens/',
  authorizationUrl: 'https://id.twitch.tv/oauth2/authorize',
  tokenUrl: 'https://id.twitch.tv/oauth2/token',
  revocationUrl: 'https://id.twitch.tv/oauth2/revoke',
  clientAuth: 'client_secret_post',
  quirks: [
    'answers `scope` as a JSON array (read as space-separated)',
    'a dead refresh token answers `{"status": 400, "message": "Invalid refresh token"}` without an RFC error code (read as `invalid_grant`)',
    'a refresh may answer a new refresh token; always the latest is kept',
    'app access tokens: `grant: client_credentials` (served at `/tokens/_app/<id>`, minted again when they expire: they have no refresh token)',
    'the revocation endpoint takes `client_id` and `token` and answers 400 for an invalid token',
  ],
  hooks,
};
