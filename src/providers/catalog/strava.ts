import type { ProviderHooks } from '../hooks';
import type { OAuth2Preset } from './preset';

const hooks: ProviderHooks = {
  // The code exchange answers the athlete beside the tokens; its numeric id is the account.
  accountId(body) {
    const athlete = body.athlete;
    if (typeof athlete !== 'object' || athlete === null) return null;
    const id = (athlete as Record<string, unknown>).id;
    return typeof id === 'number' || (typeof id === 'string' && id.length > 0) ? String(id) : null;
  },
};

export const strava: OAuth2Preset = {
  type: 'oauth2',
  name: 'Strava',
  docs: 'https://developers.strava.com/docs/authentication/',
  authorizationUrl: 'https://www.strava.com/oauth/authorize',
  tokenUrl: 'https://www.strava.com/oauth/token',
  clientAuth: 'client_secret_post',
  scopeSeparator: ',',
  quirks: [
    'scopes are comma-separated; the user may grant fewer than asked (the granted ones come back on the redirect)',
    'answers carry `expires_at` (epoch seconds) beside `expires_in` (6 h); the vault reads `expires_in`',
    'a refresh may answer a new refresh token; always the latest is kept',
    'the code exchange answers the `athlete`; account id is `athlete.id`',
    'no RFC 7009 revocation endpoint (Strava has its own deauthorization call)',
  ],
  hooks,
};
