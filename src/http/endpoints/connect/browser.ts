import type { RequestHandler } from 'express';
import { z } from 'zod';
import type { Deps } from '../../../deps';
import { readCookies, sendBrowser } from '../../cookies';
import { validate } from '../../endpoint';
import { providerId } from '../../ids';

const SESSION_ID = /^cs_[A-Za-z0-9_-]{22}$/;
const startParams = z.strictObject({ session: z.string().regex(SESSION_ID, 'not a connect session id') });
const callbackParams = z.strictObject({ provider: providerId });

/**
 * GET /connect/start/:session (public) — binds the flow to this browser, then redirects to the
 * provider. A HEAD (link checkers) binds nothing.
 */
export function openConnect(deps: Deps): RequestHandler {
  return async (req, res) => {
    // Set first, so that error pages at these URLs (which carry the state and code) send no Referer either.
    res.set('Referrer-Policy', 'no-referrer');
    const { session } = validate('params', startParams, req.params);
    if (req.method === 'HEAD') {
      res.status(204).end();
      return;
    }
    sendBrowser(res, await deps.connect.open(session, readCookies(req)));
  };
}

/**
 * GET /callback/:provider (public) — where the provider sends the browser back: finishes the
 * flow and redirects to its return_to with `status=connected` or `status=error&error=...`.
 */
export function connectCallback(deps: Deps): RequestHandler {
  return async (req, res) => {
    res.set('Referrer-Policy', 'no-referrer');
    const { provider } = validate('params', callbackParams, req.params);
    sendBrowser(res, await deps.connect.callback(provider, deps.providers.get(provider), req.query as Record<string, unknown>, readCookies(req)));
  };
}
