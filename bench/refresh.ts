/**
 * Refresh engine figures, on a fresh redis-server on loopback:
 *   - scheduler claims/s: claim-due over every shard until 100k due entries are leased
 *   - end-to-end refreshes/s: the real Scheduler + Refresher against a local token endpoint that
 *     answers at once, with 100k credentials scheduled
 *   - GET latency (p50/p99) with 1k and with 100k scheduled credentials, and their ratio
 */
import { createServer, request, Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { buildApp } from '../src/app';
import { resolveConfig } from '../src/config/load';
import { Keyring } from '../src/crypto/keyring';
import { createDeps, type Deps } from '../src/deps';
import { Secret } from '../src/secret';
import { RedisServer } from '../test/helpers/redis-server';
import type { OAuth2Credential } from '../src/credentials/credential';

const COUNT = Number(process.env.BENCH_CREDENTIALS ?? 100_000);
const API_KEY = 'bench-key';

interface Figure {
  name: string;
  value: string;
}

async function main(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const provider = await fastProvider();
  const redis = await RedisServer.start(['--appendonly', 'no']);
  const deps = await vaultDeps(redis.url, provider.url);
  try {
    const p = deps.providers.get('bench')!;
    const now = Date.now();
    // due: issued an hour ago and expired, so refresh_at is in the past and every entry is due.
    const credential = (i: number, due = false): OAuth2Credential => ({
      type: 'oauth2',
      accessToken: new Secret(`at-${i}-${'x'.repeat(30)}`),
      refreshToken: new Secret(`rt-${i}-${'y'.repeat(60)}`),
      idToken: null,
      tokenType: 'Bearer',
      scope: 'repo',
      expiresAt: due ? now - 1000 : now + 3_600_000,
      refreshExpiresAt: null,
      issuedAt: due ? now - 3_600_000 : now,
      accountId: null,
      metadata: null,
    });
    const sealed = (deps as unknown as { refresher: { deps: { sealed: import('../src/credentials/sealed-credentials').SealedCredentials } } }).refresher.deps.sealed;
    const populate = async (from: number, to: number, due = false) => {
      for (let i = from; i < to; i += 1000) {
        await Promise.all(Array.from({ length: Math.min(1000, to - i) }, (_, j) => sealed.write(`user-${i + j}`, 'bench', p, credential(i + j, due))));
      }
    };
    // Takes every lease back and puts every entry at score 0 (the records' refresh_at stays).
    const resetSchedule = async () => {
      const pipeline = deps.redis.pipeline();
      for (let shard = 0; shard < 1024; shard++) {
        const key = deps.keys.shardKey(shard, 'due');
        pipeline.eval("for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do redis.call('ZADD', KEYS[1], 0, m) end return 0", 1, key);
        pipeline.del(deps.keys.shardKey(shard, 'leases'));
      }
      await pipeline.exec();
    };

    // GET latency with 1k scheduled credentials.
    await populate(0, 1000);
    const server = await listen(buildApp(deps));
    const small = await getLatency(server.port, 'user-7');
    figures.push({ name: 'GET p50 / p99, 1k scheduled (ms)', value: `${small.p50.toFixed(2)} / ${small.p99.toFixed(2)}  (${small.rps.toFixed(0)} req/s, 16 connections)` });

    const started = Date.now();
    await populate(1000, COUNT, true);
    figures.push({ name: `write ${COUNT} sealed credentials (records/s)`, value: ((COUNT - 1000) / ((Date.now() - started) / 1000)).toFixed(0) });

    const large = await getLatency(server.port, 'user-7');
    figures.push({ name: `GET p50 / p99, ${COUNT / 1000}k scheduled (ms)`, value: `${large.p50.toFixed(2)} / ${large.p99.toFixed(2)}  (${large.rps.toFixed(0)} req/s)` });
    figures.push({ name: `GET p99 ratio ${COUNT / 1000}k / 1k (target ≤ 1.10)`, value: (large.p99 / small.p99).toFixed(2) });
    figures.push({ name: `GET p50 ratio ${COUNT / 1000}k / 1k`, value: (large.p50 / small.p50).toFixed(2) });
    await new Promise((resolve) => server.server.close(resolve));

    // Claim throughput: lease every due entry, shard by shard, as the scheduler does.
    await resetSchedule();
    let claimed = 0;
    const claimStart = process.hrtime.bigint();
    while (claimed < COUNT) {
      const shards = Array.from({ length: 1024 }, (_, i) => i);
      const results = await deps.store.claimDueMany(shards, 200, 30_000, `bench-${claimed}`);
      const got = results.reduce((sum, r) => sum + r.members.length, 0);
      if (got === 0) break;
      claimed += got;
    }
    const claimSeconds = Number(process.hrtime.bigint() - claimStart) / 1e9;
    figures.push({ name: 'scheduler claims/s, one process (target ≥ 5,000)', value: `${(claimed / claimSeconds).toFixed(0)}  (${claimed} in ${claimSeconds.toFixed(2)} s)` });

    // End to end: the real scheduler against the fast provider. The first 1k are not due (their
    // entries are dropped as stale after re-reading the record); the rest are.
    await resetSchedule();
    provider.count = 0;
    deps.scheduler.start();
    const e2eStart = Date.now();
    const window = 20_000;
    const due = COUNT - 1000;
    while (provider.count < due && Date.now() - e2eStart < window) await new Promise((r) => setTimeout(r, 100));
    const e2eSeconds = (Date.now() - e2eStart) / 1000;
    await deps.scheduler.stop();
    figures.push({ name: 'end-to-end scheduled refreshes/s (64 workers, fast local provider)', value: `${(provider.count / e2eSeconds).toFixed(0)}  (${provider.count} in ${e2eSeconds.toFixed(1)} s)` });
  } finally {
    await deps.close();
    await redis.stop();
    provider.server.close();
  }
  return figures;
}

async function vaultDeps(redisUrl: string, tokenUrl: string): Promise<Deps> {
  const loaded = resolveConfig(
    {
      keyring: JSON.parse(Keyring.generateJson('k1')) as unknown,
      callers: [{ name: 'bench', key: API_KEY, scopes: ['tokens:read', 'tokens:write'], providers: ['*'] }],
      providers: { bench: { type: 'oauth2', clientId: 'c', clientSecret: 's', tokenUrl, maxConcurrency: 64 } },
      refresh: { workers: 64 },
      redis: { url: redisUrl },
    },
    { env: { LOG_LEVEL: 'silent' }, mode: 'development', baseDir: process.cwd() },
  );
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  return createDeps(loaded, { logDestination: sink as never, pollMs: 10 });
}

async function fastProvider(): Promise<{ url: string; server: import('node:http').Server; count: number }> {
  const state = { url: '', server: createServer(), count: 0 };
  let n = 0;
  state.server.on('request', (req, res) => {
    req.resume();
    req.on('end', () => {
      state.count++;
      n++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ access_token: `new-${n}`, refresh_token: `rt-new-${n}`, expires_in: 3600, token_type: 'Bearer' }));
    });
  });
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/token`;
  return state;
}

async function listen(app: express.Express): Promise<{ port: number; server: import('node:http').Server }> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

/** 16 keep-alive connections, 5 s of GETs after a 1 s warm-up. */
async function getLatency(port: number, user: string): Promise<{ p50: number; p99: number; rps: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const one = () =>
    new Promise<number>((resolve, reject) => {
      const start = process.hrtime.bigint();
      const req = request({ host: '127.0.0.1', port, path: `/tokens/${user}/bench`, agent, headers: { authorization: `Bearer ${API_KEY}` } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - start) / 1e6) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  const run = async (ms: number) => {
    const samples: number[] = [];
    const until = Date.now() + ms;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (Date.now() < until) samples.push(await one());
      }),
    );
    return samples;
  };
  await run(1000);
  const samples = (await run(5000)).sort((a, b) => a - b);
  agent.destroy();
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { p50: at(0.5), p99: at(0.99), rps: samples.length / 5 };
}

void main().then((figures) => {
  console.log(`\nRefresh engine (${COUNT} credentials, redis-server on loopback, node ${process.version})\n`);
  const width = Math.max(...figures.map((f) => f.name.length));
  for (const figure of figures) console.log(`${figure.name.padEnd(width)}  ${figure.value}`);
});
