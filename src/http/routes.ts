import type { Express } from 'express';
import type { Deps } from '../deps';
import type { Route } from './endpoint';
import { getRewrap, listKeys, recountKeys, reloadKeys, startRewrap } from './endpoints/admin/keys';
import { listDeliveries, retryDelivery } from './endpoints/admin/webhook-deliveries';
import { connectCallback, openConnect, probeConnectStart } from './endpoints/connect/browser';
import { getConnectSession } from './endpoints/connect/get-session';
import { startConnect } from './endpoints/connect/start-connect';
import { healthz, metrics, readyz } from './endpoints/health/probes';
import { listProviders } from './endpoints/providers/list-providers';
import { deleteAppToken, getAppToken } from './endpoints/tokens/app-token';
import { deleteToken } from './endpoints/tokens/delete-token';
import { deleteUserTokens } from './endpoints/tokens/delete-user-tokens';
import { getToken } from './endpoints/tokens/get-token';
import { listTokens } from './endpoints/tokens/list-tokens';
import { putToken } from './endpoints/tokens/put-token';
import { refreshToken } from './endpoints/tokens/refresh-token';
import { signOAuth1Request } from './endpoints/tokens/sign-request';
import { providerRevocation } from './endpoints/webhooks/provider-revocation';

export interface RouteGroup {
  /** The OpenAPI tag. */
  name: string;
  description: string;
  routes: Route[];
}

/**
 * Every route of the API (DESIGN §4), in the order express matches them. registerRoutes() and
 * openapi.yaml (src/http/openapi/document.ts) are both built from this table.
 */
export const ROUTES: readonly RouteGroup[] = [
  { name: 'health', description: 'Probes and metrics; no key needed.', routes: [healthz, readyz, metrics] },
  {
    name: 'tokens',
    description: "Store users' credentials and hand out valid tokens.",
    // Before /tokens/:user/:provider: "_app" is not a user.
    routes: [getAppToken, deleteAppToken, putToken, getToken, deleteToken, refreshToken, signOAuth1Request, listTokens, deleteUserTokens],
  },
  { name: 'providers', description: 'What the configured providers can do.', routes: [listProviders] },
  {
    name: 'connect',
    description: "Connect users: the caller starts a flow; the user's browser opens the start URL and comes back to the callback.",
    // HEAD before GET: express would otherwise answer a HEAD with the GET handler.
    routes: [startConnect, getConnectSession, probeConnectStart, openConnect, connectCallback],
  },
  { name: 'admin', description: 'Keyring, rewrap and outbound webhook deliveries (admin scope).', routes: [listKeys, reloadKeys, recountKeys, startRewrap, getRewrap, listDeliveries, retryDelivery] },
  { name: 'webhooks', description: 'Providers telling the vault about revocations; verified by signature instead of a key.', routes: [providerRevocation] },
];

/** Registers the route table; `publicOnly`: only the routes marked publicPort (the server.publicPort listener). */
export function registerRoutes(app: Express, deps: Deps, publicOnly = false): void {
  for (const group of ROUTES) {
    for (const route of group.routes) {
      if (!publicOnly || route.publicPort) app[route.method](route.path, ...route.handlers(deps));
    }
  }
}
