import express, { type Express } from 'express';
import type { Deps } from './deps';
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
