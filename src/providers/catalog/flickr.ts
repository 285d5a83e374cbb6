import type { OAuth1Preset } from './preset';

export const flickr: OAuth1Preset = {
  type: 'oauth1',
  name: 'Flickr, OAuth 1.0a',
  docs: 'https://www.flickr.com/services/api/auth.oauth.html',
  signatureMethod: 'HMAC-SHA1',
  includeVersion: true,
  requestTokenUrl: 'https://www.flickr.com/services/oauth/request_token',
  authorizeUrl: 'https://www.flickr.com/services/oauth/authorize',
  accessTokenUrl: 'https://www.flickr.com/services/oauth/access_token',
  // Without perms Flickr answers "doesn't recognise the permission set".
  authorizeParams: { perms: 'read' },
  accountIdField: 'user_nsid',
  quirks: [
    'the authorize URL needs `perms` (`read`, `write` or `delete`; `read` sent)',
    'the access-token answer carries `user_nsid`, `username` and `fullname` (account id: `user_nsid`)',
  ],
};
