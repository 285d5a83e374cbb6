import { hostParam } from './params';
import type { OAuth2Preset } from './preset';

const base = 'https://{host}/oauth';

export const gitlab: OAuth2Preset = {
  type: 'oauth2',
  name: 'GitLab (gitlab.com or self-managed)',
  docs: 'https://docs.gitlab.com/ee/api/oauth2.html',
  params: {
    host: hostParam('GitLab host name, e.g. gitlab.example.com', 'gitlab.com'),
  },
  authorizationUrl: `${base}/authorize`,
  tokenUrl: `${base}/token`,
  revocationUrl: `${base}/revoke`,
  userinfoUrl: `${base}/userinfo`,
  clientAuth: 'client_secret_post',
  quirks: [
    'URLs hold the instance host (`params.host`, default `gitlab.com`)',
    'access tokens expire after 2 h; a refresh invalidates the access and refresh token it was given and answers new ones (rotation)',
  ],
};
