import { z } from 'zod';
import { mayUseProvider } from '../../../auth/callers';
import type { ProviderConfig } from '../../../config/schema';
import type { Deps } from '../../../deps';
import { CATALOG } from '../../../providers/catalog';
import { endpoint } from '../../endpoint';

/** What a caller may know about a provider: what it can do, never a secret or a client id. */
export function providerView(id: string, provider: ProviderConfig) {
  const preset = provider.preset === undefined ? null : { id: provider.preset, name: CATALOG.get(provider.preset)?.name ?? provider.preset };
  const common = { id, type: provider.type, preset, inbound_webhook: provider.inboundWebhook !== undefined };
  if (provider.type === 'oauth1') {
    return {
      ...common,
      signature_method: provider.signatureMethod,
      sign_only: provider.signOnly,
      flows: provider.requestTokenUrl && provider.authorizeUrl && provider.accessTokenUrl ? ['oauth1'] : [],
      revocation: false,
    };
  }
  const flows: string[] = [];
  if (provider.grant === 'client_credentials') flows.push('client_credentials');
  else {
    if (provider.authorizationUrl) flows.push('authorization_code');
    if (provider.deviceAuthorizationUrl) flows.push('device');
  }
  return { ...common, grant: provider.grant, flows, scopes: provider.scopes, revocation: provider.revocationUrl !== undefined };
}

/** GET /providers — the configured providers this caller may use, and what each can do. */
export function listProviders(deps: Deps) {
  return endpoint(deps, {
    scope: null,
    params: z.strictObject({}),
    async handle({ caller, res }) {
      const providers = [...deps.providers.entries()]
        .filter(([id]) => mayUseProvider(caller, id))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([id, provider]) => providerView(id, provider));
      res.json({ providers });
    },
  });
}
