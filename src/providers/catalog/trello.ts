import type { OAuth1Preset } from './preset';

export const trello: OAuth1Preset = {
  type: 'oauth1',
  name: 'Trello, OAuth 1.0a',
  docs: 'https://developer.atlassian.com/cloud/trello/guides/rest-api/authorization/',
  signatureMethod: 'HMAC-SHA1',
  includeVersion: true,
  requestTokenUrl: 'https://trello.com/1/OAuthGetRequestToken',
  authorizeUrl: 'https://trello.com/1/OAuthAuthorizeToken',
  accessTokenUrl: 'https://trello.com/1/OAuthGetAccessToken',
  // The vault cannot renew an OAuth 1.0a token, so ask for one that does not expire.
  authorizeParams: { scope: 'read', expiration: 'never' },
  quirks: [
    'the authorize URL takes `name` (shown to the user; set it in `authorizeParams`), `scope` (`read`, `write`, `account`, comma-separated) and `expiration` (`1hour`, `1day`, `30days`, `never`)',
    'tokens expire after 30 days unless `expiration=never` (sent, with `scope=read`)',
  ],
};
