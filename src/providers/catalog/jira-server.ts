import { hostParam } from './params';
import type { OAuth1Preset } from './preset';

const base = 'https://{host}/plugins/servlet/oauth';

export const jiraServer: OAuth1Preset = {
  type: 'oauth1',
  name: 'Jira Server / Data Center, OAuth 1.0a (RSA-SHA1)',
  docs: 'https://developer.atlassian.com/server/jira/platform/oauth/',
  params: {
    host: hostParam('Jira host name, e.g. jira.example.com'),
  },
  signatureMethod: 'RSA-SHA1',
  includeVersion: true,
  requestTokenUrl: `${base}/request-token`,
  authorizeUrl: `${base}/authorize`,
  accessTokenUrl: `${base}/access-token`,
  quirks: [
    'URLs hold the Jira host (`params.host`, required); a Jira under a context path (`/jira`) needs the three URLs in the entry',
    'requests are signed with RSA-SHA1: `privateKey` is the key whose public half is in the Jira application link, `consumerKey` the link\'s consumer key; the consumer secret plays no part in the signature',
    'for Jira Cloud use the `atlassian` (OAuth 2.0) preset instead',
  ],
};
