import type { OAuth2Preset } from './preset';

export const discord: OAuth2Preset = {
  type: 'oauth2',
  name: 'Discord',
  docs: 'https://discord.com/developers/docs/topics/oauth2',
  authorizationUrl: 'https://discord.com/api/oauth2/authorize',
  tokenUrl: 'https://discord.com/api/oauth2/token',
  revocationUrl: 'https://discord.com/api/oauth2/token/revoke',
  clientAuth: 'client_secret_basic',
  quirks: [
    'publishes RFC 8414 metadata (`https://discord.com/.well-known/oauth-authorization-server`): basic or post client authentication, PKCE S256, RFC 7009 revocation',
    'a `bot` install answers a `guild` object beside the token, a `webhook.incoming` one a `webhook`; the vault keeps neither',
    '`client_credentials` answers no refresh token',
  ],
};
