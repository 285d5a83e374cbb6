import { z } from 'zod';
import { mayUseProvider } from '../../../auth/callers';
import type { ProviderConfig } from '../../../config/schema';
import { CATALOG } from '../../../providers/catalog';
import { endpoint } from '../../endpoint';
import { json } from '../../openapi/common';

const shared = {
  id: z.string(),
  preset: z.strictObject({ id: z.string(), name: z.string() }).nullable().meta({ description: 'The catalog preset the provider was configured from.' }),
  inbound_webhook: z.boolean().meta({ description: 'Whether the provider can tell the vault about revocations (POST /webhooks/{provider}/revocation).' }),
};

const providerViewSchema = z
  .discriminatedUnion('type', [
    z
      .strictObject({
        ...shared,
        type: z.literal('oauth2'),
        grant: z.enum(['authorization_code', 'client_credentials']),
        flows: z.array(z.enum(['authorization_code', 'device', 'client_credentials'])),
        scopes: z.array(z.string()),
        revocation: z.boolean().meta({ description: 'Whether deleted credentials are revoked upstream (RFC 7009).' }),
      })
      .meta({ id: 'OAuth2Provider' }),
    z
      .strictObject({
        ...shared,
        type: z.literal('oauth1'),
        signature_method: z.enum(['HMAC-SHA1', 'HMAC-SHA256', 'RSA-SHA1', 'PLAINTEXT']),
        sign_only: z.boolean().meta({ description: 'Token secrets never leave the vault: use POST /tokens/{user}/{provider}/sign.' }),
        flows: z.array(z.literal('oauth1')),
        revocation: z.literal(false),
      })
      .meta({ id: 'OAuth1Provider' }),
  ])
  .meta({ id: 'Provider', description: 'What a provider can do; never a client id, secret or URL.' });
type ProviderView = z.infer<typeof providerViewSchema>;

const providersAnswer = z.strictObject({ providers: z.array(providerViewSchema) });

/** What a caller may know about a provider: what it can do, never a secret or a client id. */
export function providerView(id: string, provider: ProviderConfig): ProviderView {
  const preset = provider.preset === undefined ? null : { id: provider.preset, name: CATALOG.get(provider.preset)?.name ?? provider.preset };
  const inbound_webhook = provider.inboundWebhook !== undefined;
  if (provider.type === 'oauth1') {
    return {
      id,
      type: 'oauth1',
      preset,
      inbound_webhook,
      signature_method: provider.signatureMethod,
      sign_only: provider.signOnly,
      flows: provider.requestTokenUrl && provider.authorizeUrl && provider.accessTokenUrl ? ['oauth1'] : [],
      revocation: false,
    };
  }
  const flows: ('authorization_code' | 'device' | 'client_credentials')[] = [];
  if (provider.grant === 'client_credentials') flows.push('client_credentials');
  else {
    if (provider.authorizationUrl) flows.push('authorization_code');
    if (provider.deviceAuthorizationUrl) flows.push('device');
  }
  return { id, type: 'oauth2', preset, inbound_webhook, grant: provider.grant, flows, scopes: provider.scopes, revocation: provider.revocationUrl !== undefined };
}

/** GET /providers — the configured providers this caller may use, and what each can do. */
export const listProviders = endpoint({
  method: 'get',
  path: '/providers',
  operationId: 'listProviders',
  summary: 'List the providers this caller may use',
  description: 'Sorted by id.',
  scope: null,
  responses: {
    200: json('The providers.', providersAnswer),
  },
  async handle({ deps, caller, res }) {
    const providers = [...deps.providers.entries()]
      .filter(([id]) => mayUseProvider(caller, id))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, provider]) => providerView(id, provider));
    res.json({ providers } satisfies z.infer<typeof providersAnswer>);
  },
});
