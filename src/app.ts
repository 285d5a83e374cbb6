import express, { type Express } from 'express';
import type { RequestListener } from 'node:http';
import type { Deps } from './deps';
import { withHotRoute } from './http/hot-route';
import { errorHandler, notFound } from './http/middleware/errors';
import { requestLifecycle } from './http/middleware/request-lifecycle';
import { registerRoutes } from './http/routes';

export interface AppOptions {
  /**
   * 'all' (default): every route. 'public': only the routes browsers and providers reach, for
   * the server.publicPort listener (the routes marked publicPort in http/routes.ts).
   */
  surface?: 'all' | 'public';
}

/** The express app. It never listens: main.ts does, and tests drive it with supertest. */
export function buildApp(deps: Deps, options: AppOptions = {}): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // ETags are record versions, set by the endpoints that have one
  app.set('query parser', 'simple');

  app.use(requestLifecycle(deps));

  registerRoutes(app, deps, options.surface === 'public');
  app.use(notFound());
  app.use(errorHandler(deps.logger));
  return app;
}

/**
 * What a listener serves: on the API surface, the hot route (GET /tokens/:user/:provider
 * without express, http/hot-route.ts) in front of the express app; the public surface has no
 * such route. Never listens either.
 */
export function buildHandler(deps: Deps, options: AppOptions = {}): RequestListener {
  const app = buildApp(deps, options);
  return options.surface === 'public' ? app : withHotRoute(deps, app);
}
