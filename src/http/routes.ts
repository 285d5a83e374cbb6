import type { Express } from 'express';
import type { Deps } from '../deps';
import { getRewrap, listKeys, recountKeys, reloadKeys, startRewrap } from './endpoints/admin/keys';
import { listDeliveries, retryDelivery } from './endpoints/admin/webhook-deliveries';
import { connectCallback, openConnect } from './endpoints/connect/browser';
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

/** Every route of the API, in one table (DESIGN §4). */
export function registerRoutes(app: Express, deps: Deps): void {
  app.get('/healthz', healthz());
  app.get('/readyz', readyz(deps));
  app.get('/metrics', metrics(deps));

  // Before /tokens/:user/:provider: "_app" is not a user.
  app.get('/tokens/_app/:provider', getAppToken(deps));
  app.delete('/tokens/_app/:provider', deleteAppToken(deps));
  app.put('/tokens/:user/:provider', putToken(deps));
  app.get('/tokens/:user/:provider', getToken(deps));
  app.delete('/tokens/:user/:provider', deleteToken(deps));
  app.post('/tokens/:user/:provider/refresh', refreshToken(deps));
  app.post('/tokens/:user/:provider/sign', signOAuth1Request(deps));
  app.get('/tokens/:user', listTokens(deps));
  app.delete('/tokens/:user', deleteUserTokens(deps));

  app.get('/providers', listProviders(deps));
  app.post('/connect/:provider', startConnect(deps));
  app.get('/connect/sessions/:id', getConnectSession(deps));
  app.get('/connect/start/:session', openConnect(deps));
  app.get('/callback/:provider', connectCallback(deps));

  app.get('/admin/keys', listKeys(deps));
  app.post('/admin/keys/reload', reloadKeys(deps));
  app.post('/admin/keys/recount', recountKeys(deps));
  app.post('/admin/rewrap', startRewrap(deps));
  app.get('/admin/rewrap/:id', getRewrap(deps));
  app.get('/admin/webhooks/deliveries', listDeliveries(deps));
  app.post('/admin/webhooks/deliveries/:id/retry', retryDelivery(deps));

  app.post('/webhooks/:provider/revocation', providerRevocation(deps));
}
