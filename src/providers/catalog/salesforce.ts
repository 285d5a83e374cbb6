import { hostParam } from './params';
import type { OAuth2Preset } from './preset';

const base = 'https://{host}/services/oauth2';

export const salesforce: OAuth2Preset = {
  type: 'oauth2',
  name: 'Salesforce',
  docs: 'https://help.salesforce.com/apex/HTViewHelpDoc?id=remoteaccess_oauth_refresh_token_flow.htm&language=en_US',
  params: {
    host: hostParam('login host: login.salesforce.com, test.salesforce.com (sandboxes) or a My Domain such as acme.my.salesforce.com', 'login.salesforce.com'),
  },
  authorizationUrl: `${base}/authorize`,
  tokenUrl: `${base}/token`,
  revocationUrl: `${base}/revoke`,
  clientAuth: 'client_secret_post',
  // Token answers say nothing about expiry: an access token lives until the session times out,
  // which an org can set as low as 15 minutes. Assume the shortest.
  defaultLifetimeSeconds: 900,
  quirks: [
    'URLs hold the login host (`params.host`, default `login.salesforce.com`)',
    'token answers carry no `expires_in`: the access token ends with the session timeout (as short as 15 min), so refreshes are scheduled as if it lived 900 s (`defaultLifetimeSeconds`; raise it to your timeout)',
    'API calls go to the answer\'s `instance_url`, which the vault does not keep (callers store it in `metadata`)',
    'refresh-token rotation is an opt-in connected-app setting',
    'the revocation endpoint takes `token` alone (no client authentication required) and answers 400 `invalid_token` for an unknown token',
  ],
};
