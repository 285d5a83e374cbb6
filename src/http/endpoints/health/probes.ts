import { z } from 'zod';
import { UnavailableError } from '../../../errors';
import { publicEndpoint } from '../../endpoint';
import { json, retryLater, type ErrorBody } from '../../openapi/common';

const READY_TIMEOUT_MS = 1000;

const ok = z.strictObject({ status: z.literal('ok') });

/** GET /healthz — the process is up and serving HTTP. */
export const healthz = publicEndpoint({
  method: 'get',
  path: '/healthz',
  publicPort: true,
  operationId: 'healthz',
  summary: 'Liveness: the process serves HTTP',
  responses: {
    200: json('Up.', ok),
  },
  handle({ res }) {
    res.json({ status: 'ok' } satisfies z.infer<typeof ok>);
  },
});

/**
 * GET /readyz — ready for traffic: Redis answers a PING within a second and a keyring is loaded.
 * Fails while shutting down so load balancers stop sending requests first.
 */
export const readyz = publicEndpoint({
  method: 'get',
  path: '/readyz',
  operationId: 'readyz',
  summary: 'Readiness: Redis answers and a keyring is loaded',
  description: 'Fails while shutting down, so load balancers stop sending requests first.',
  responses: {
    200: json('Ready.', ok),
    503: retryLater('`unavailable`: not ready; the failing checks (`process`, `keyring`, `redis`) are in `details`.'),
  },
  async handle({ deps, res }) {
    const problems: { path: string; message: string }[] = [];
    if (deps.state.shuttingDown) problems.push({ path: 'process', message: 'shutting down' });
    if (!deps.keyring.get()) problems.push({ path: 'keyring', message: 'no keyring is loaded' });
    if (!(await answersWithin(deps.store.ping(), READY_TIMEOUT_MS))) problems.push({ path: 'redis', message: 'Redis does not answer' });
    if (problems.length > 0) {
      const error = new UnavailableError(`not ready: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, 1);
      res.status(error.status).set(error.headers).json({ error: { code: error.code, message: error.message, details: problems } } satisfies ErrorBody);
      return;
    }
    res.json({ status: 'ok' } satisfies z.infer<typeof ok>);
  },
});

/** GET /metrics — Prometheus text exposition. */
export const metrics = publicEndpoint({
  method: 'get',
  path: '/metrics',
  operationId: 'metrics',
  summary: 'Prometheus metrics',
  responses: {
    200: { description: 'The Prometheus text exposition format (version 0.0.4).', content: { 'text/plain': z.string() } },
  },
  async handle({ deps, res }) {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  },
});

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
