import type { OAuth1Preset } from './preset';

export const twitter: OAuth1Preset = {
  type: 'oauth1',
  name: 'X (Twitter), OAuth 1.0a',
  docs: 'https://developer.x.com/en/docs/authentication/oauth-1-0a',
  signatureMethod: 'HMAC-SHA1',
  includeVersion: true,
  requestTokenUrl: 'https://api.twitter.com/oauth/request_token',
  authorizeUrl: 'https://api.twitter.com/oauth/authorize',
  accessTokenUrl: 'https://api.twitter.com/oauth/access_token',
  accountIdField: 'user_id',
  quirks: [
    'the access-token answer carries `user_id` and `screen_name` (account id: `user_id`)',
    'a user who declines comes back with `denied=<token>` instead of an OAuth error',
    'tokens never expire',
  ],
};
