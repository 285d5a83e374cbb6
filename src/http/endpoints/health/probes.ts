import type { RequestHandler } from 'express';
import type { Deps } from '../../../deps';
import { UnavailableError } from '../../../errors';

const READY_TIMEOUT_MS = 1000;

/** GET /healthz — the process is up and serving HTTP. */
export function healthz(): RequestHandler {
  return (_req, res) => {
    res.json({ status: 'ok' });
  };
}

/**
 * GET /readyz — ready for traffic: Redis answers a PING within a second and a keyring is loaded.
 * Fails while shutting down so load balancers stop sending requests first.
 */
export function readyz(deps: Deps): RequestHandler {
  return async (_req, res) => {
    const problems: { path: string; message: string }[] = [];
    if (deps.state.shuttingDown) problems.push({ path: 'process', message: 'shutting down' });
    if (!deps.keyring.get()) problems.push({ path: 'keyring', message: 'no keyring is loaded' });
    if (!(await answersWithin(deps.store.ping(), READY_TIMEOUT_MS))) problems.push({ path: 'redis', message: 'Redis does not answer' });
    if (problems.length > 0) {
      const error = new UnavailableError(`not ready: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, 1);
      res.status(error.status).set(error.headers).json({ error: { code: error.code, message: error.message, details: problems } });
      return;
    }
    res.json({ status: 'ok' });
  };
}

/** GET /metrics — Prometheus text exposition. */
export function metrics(deps: Deps): RequestHandler {
  return async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  };
}

async function answersWithin(call: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([call.then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
