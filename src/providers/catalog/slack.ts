import type { ProviderHooks } from '../hooks';
import type { OAuth2Preset } from './preset';

const object = (value: unknown): Record<string, unknown> | null =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
const id = (value: unknown): string | null => {
  const found = object(value)?.id;
  return typeof found === 'string' && found.length > 0 ? found : null;
};

const hooks: ProviderHooks = {
  // Slack answers HTTP 200 with {"ok": false, "error": "invalid_refresh_token"}.
  errorCode: (code) =>
    ({ invalid_refresh_token: 'invalid_grant', invalid_code: 'invalid_grant', code_already_used: 'invalid_grant', invalid_client_id: 'invalid_client', bad_client_secret: 'invalid_client' })[code] ?? code,
  // oauth.v2.access puts a bot token at the top level and a user token under authed_user; an
  // install that asked only for user scopes has nothing at the top level.
  tokenResponse(body) {
    if (typeof body.access_token === 'string') return body;
    const user = object(body.authed_user);
    return user && typeof user.access_token === 'string' ? { ...body, ...user } : body;
  },
  // The convention of the inbound webhook (README): "T…" for a workspace install, "T…:U…" for a user token.
  accountId(body) {
    const team = id(body.team);
    if (team === null) return null;
    const user = typeof body.access_token === 'string' && body.token_type === 'user' ? id(body.authed_user) : null;
    return user === null ? team : `${team}:${user}`;
  },
};

export const slack: OAuth2Preset = {
  type: 'oauth2',
  name: 'Slack',
  docs: 'https://api.slack.com/authentication/oauth-v2',
  authorizationUrl: 'https://slack.com/oauth/v2/authorize',
  tokenUrl: 'https://slack.com/api/oauth.v2.access',
  clientAuth: 'client_secret_post',
  scopeSeparator: ',',
  inboundVerifier: 'slack',
  quirks: [
    'errors come with HTTP 200 as `{"ok": false, "error": ...}` (`invalid_refresh_token`, `invalid_code`, `bad_client_secret`)',
    'scopes are comma-separated',
    'tokens never expire and come without a refresh token unless token rotation is on (then 12 h, with rotating refresh tokens)',
    'a user token comes under `authed_user`; account id is `T…` for a workspace install, `T…:U…` for a user token',
    'no RFC 7009 revocation endpoint (`auth.revoke` is a Web API method called with the token itself)',
  ],
  hooks,
};
