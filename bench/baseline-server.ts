/**
 * The floor the vault's GET is measured against: a minimal express 5 + ioredis server, as a
 * service without crypto, authentication, logging or metrics would be written. It reads one
 * HASH per request (the same command and about the same bytes as the vault's record: the bench
 * copies each vault record with the sealed blob replaced by the vault's JSON answer, padded to
 * the blob's length) and answers that JSON.
 *
 *   BASELINE_PORT=8081 BASELINE_REDIS_URL=redis://127.0.0.1:7000 node --import tsx bench/baseline-server.ts
 */
import express from 'express';
import { Redis } from 'ioredis';

export const BASELINE_PREFIX = 'bl:';

export function baselineKey(user: string, provider: string): string {
  return `${BASELINE_PREFIX}${user}:${provider}`;
}

export function main(): void {
  const port = Number(process.env.BASELINE_PORT);
  const redis = new Redis(process.env.BASELINE_REDIS_URL as string, { maxRetriesPerRequest: 1 });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.get('/readyz', async (_req, res) => {
    await redis.ping();
    res.json({ status: 'ok' });
  });
  app.get('/tokens/:user/:provider', async (req, res) => {
    const record = await redis.hgetallBuffer(baselineKey(req.params.user, req.params.provider));
    if (!record.body) {
      res.status(404).json({ error: { code: 'not_found', message: 'no credential' } });
      return;
    }
    res.set('Cache-Control', 'no-store').json(JSON.parse(record.body.toString('utf8')) as unknown);
  });
  const server = app.listen(port, '127.0.0.1');
  const stop = () => {
    server.close();
    server.closeAllConnections();
    void redis.quit().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) main();
