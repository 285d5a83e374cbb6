import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { Keys, SHARD_COUNT } from '../../../src/store/keys';
import { redisWarnings } from '../../../src/store/redis-checks';
import { hashSlot } from '../../../src/store/topology';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { sleep, waitFor } from '../../helpers/checks';
import { ScriptedTokenServer } from '../../helpers/providers/scripted-token-server';
import { RedisCluster } from '../../helpers/redis-cluster';
import { monitorNode } from '../../helpers/redis-process';
import { WebhookReceiver } from '../../helpers/webhook-receiver';

/**
 * The vault on a real three-master Redis Cluster: every Lua script with its keys on each of the
 * masters, work that spans all shards (the scheduler, rewrap, recount, counts, readiness) on
 * every master, a slot moving while the vault works, WAIT on the master that took the write, and
 * the start-up warnings per master.
 */
let cluster: RedisCluster;
let inspect: Redis;
let provider: ScriptedTokenServer;
let receiver: WebhookReceiver;
let dir: string;
let a: TestVault;
let b: TestVault | undefined;
const keys = new Keys('tv:');
const material = Object.fromEntries(['k1', 'k2', 'k3', 'k4'].map((id) => [id, randomBytes(32).toString('base64')]));
const RECORDS = 300;

function writeKeyring(active: string): void {
  const ids = Object.keys(material).filter((id) => id <= active);
  writeFileSync(join(dir, 'keyring.json'), JSON.stringify({ active, keys: Object.fromEntries(ids.map((id) => [id, material[id]])) }));
}

const configure = (standard: Record<string, unknown>) => ({
  ...standard,
  keyring: { file: join(dir, 'keyring.json') },
  providers: {
    ...(standard.providers as object),
    flaky: { type: 'oauth2', clientId: 'flaky-client', clientSecret: 'flaky-secret', tokenUrl: provider.url, revocationUrl: `${provider.origin}/revoke` },
  },
  refresh: { skewSeconds: 1, jitterSeconds: 0, leaseSeconds: 5, maxBackoffSeconds: 2, failedEventAfterSeconds: 0 },
  // Slow enough that a test can act while a job runs: about a third of a second per master.
  rewrap: { recordsPerSecond: 300 },
  webhooks: { subscribers: [{ url: receiver.url, secret: `whsec_${randomBytes(32).toString('base64')}`, events: ['token.revoked'] }] },
});

beforeAll(async () => {
  [cluster, provider, receiver] = await Promise.all([RedisCluster.start(), ScriptedTokenServer.start(), WebhookReceiver.start()]);
  inspect = cluster.client();
  dir = mkdtempSync(join(tmpdir(), 'tv-cluster-test-'));
  writeKeyring('k1');
  provider.setDefault({ status: 200, body: { access_token: `at-${randomBytes(8).toString('hex')}`, refresh_token: `rt-${randomBytes(8).toString('hex')}`, token_type: 'bearer', expires_in: 3600 } });
  a = await startVault({ redis: cluster, clock: TestClock.realTime(), scheduler: true, webhooks: true, deps: { pollMs: 100, outboxSweepMs: 500 }, config: configure });
}, 60_000);

afterAll(async () => {
  inspect.disconnect();
  await b?.close();
  await a.close();
  await Promise.all([cluster.stop(), provider.stop(), receiver.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const as = (vault: TestVault, key: keyof TestVault['keys']) => vault.auth(vault.keys[key]);
const put = (vault: TestVault, user: string, provider: string, body: Record<string, unknown>) =>
  request(vault.app).put(`/tokens/${user}/${provider}`).set('Authorization', as(vault, 'writer')).send(body);
const get = (vault: TestVault, user: string, provider: string) => request(vault.app).get(`/tokens/${user}/${provider}`).set('Authorization', as(vault, 'reader'));

/** The master port holding each user's shard. */
async function ownersOf(users: string[]): Promise<Map<string, number>> {
  const owner = await cluster.slotOwners();
  return new Map(users.map((user) => [user, owner(hashSlot(keys.credential(user, 'x')))]));
}

async function rotateTo(active: string, vaults: TestVault[]): Promise<void> {
  writeKeyring(active);
  // The last replica to reload sees every other live one holding the key, and activates it.
  for (const vault of vaults) expect((await request(vault.app).post('/admin/keys/reload').set('Authorization', as(vault, 'admin'))).status).toBe(200);
  const status = await request(vaults[0]!.app).get('/admin/keys').set('Authorization', as(vaults[0]!, 'admin'));
  expect(status.body.active).toBe(active);
}

type JobView = { id: string; state: string; total: number; done: number; failed: number };
async function jobDone(vault: TestVault, id: string, timeoutMs = 30_000): Promise<JobView> {
  return waitFor(
    async () => {
      const job = (await request(vault.app).get(`/admin/rewrap/${id}`).set('Authorization', as(vault, 'admin'))).body.job as JobView;
      return job.state !== 'running' ? job : undefined;
    },
    `rewrap job ${id} to end`,
    timeoutMs,
  );
}

async function recordsByKey(vault: TestVault): Promise<[string, number][]> {
  const status = await request(vault.app).get('/admin/keys').set('Authorization', as(vault, 'admin'));
  return (status.body.keys as { id: string; records: number }[]).filter((key) => key.records > 0).map((key) => [key.id, key.records]);
}

/** The cursor a cluster rewrap job keeps: one SCAN cursor per master, null once done. */
async function jobCursor(id: string): Promise<{ pass: number; nodes: Record<string, string | null> } | null> {
  const cursor = await inspect.hget(keys.rewrapJob(id), 'cursor');
  return cursor?.startsWith('{') ? JSON.parse(cursor) : null;
}

test('every script runs with its keys on each of the three masters: writes, scheduled and forced refreshes, failures, deletes with upstream revocation, webhooks', async () => {
  const users = Array.from({ length: 48 }, (_, i) => `spread-${i}`);
  const owners = await ownersOf(users);
  expect(new Set(owners.values()).size).toBe(3);

  // put-credential on every master; expiring in 2 s, so the scheduler (claim-due, lease-held) refreshes each.
  const created = await Promise.all(users.map((user) => put(a, user, 'flaky', { type: 'oauth2', access_token: `first-${user}`, refresh_token: `rt-${user}`, expires_in: 2 })));
  expect(created.map((res) => res.status)).toEqual(users.map(() => 201));
  await waitFor(() => provider.requests.filter((req) => req.form.grant_type === 'refresh_token').length >= users.length, 'every scheduled refresh', 15_000);
  const refreshed = await Promise.all(users.map((user) => get(a, user, 'flaky')));
  expect(refreshed.map((res) => res.status)).toEqual(users.map(() => 200));
  refreshed.forEach((res, i) => {
    expect(res.body.version).toBeGreaterThan(created[i]!.body.version);
    expect(res.body.access_token).not.toBe(`first-${users[i]}`);
  });

  // acquire-lease, record-failure, then release on success, for a user on each master.
  const onEach = [...new Map([...owners].map(([user, port]) => [port, user])).values()];
  provider.respond(...onEach.map(() => ({ status: 503, body: { error: 'temporarily_unavailable' } })));
  const failing = await Promise.all(onEach.map((user) => request(a.app).post(`/tokens/${user}/flaky/refresh`).set('Authorization', as(a, 'writer'))));
  expect(failing.map((res) => res.status)).toEqual(onEach.map(() => 503));
  await sleep(2100); // on-demand probes of a failing credential are spaced 2 s apart
  const recovered = await Promise.all(onEach.map((user) => request(a.app).post(`/tokens/${user}/flaky/refresh`).set('Authorization', as(a, 'writer'))));
  expect(recovered.map((res) => res.status)).toEqual(onEach.map(() => 200));

  // delete-credential queues the upstream revocation; finish-revocation drops it; the outboxes feed the webhooks.
  const deleted = await Promise.all(users.map((user) => request(a.app).delete(`/tokens/${user}/flaky`).set('Authorization', as(a, 'writer'))));
  expect(deleted.map((res) => res.status)).toEqual(users.map(() => 204));
  await waitFor(() => provider.requests.filter((req) => req.url.startsWith('/revoke')).length >= users.length, 'every upstream revocation', 15_000);
  await waitFor(async () => (await a.deps.store.revocationBacklog()) === 0, 'the revocation queue to drain', 10_000);
  await receiver.waitFor(users.length, 15_000);
  expect(new Set(receiver.received.map((hook) => (JSON.parse(hook.body) as { data: { user: string } }).data.user))).toEqual(new Set(users));

  // The counters summed over every master match what is left: nothing.
  expect(await a.deps.keyAdmin.recordsByKek()).toEqual({});
  expect(Object.values(await a.deps.store.stateCounts()).reduce((sum, n) => sum + n, 0)).toBe(0);
  expect((await a.deps.store.dueBacklog()).overdue).toBe(0);
});

test('a slot moving to another master while the vault works (MOVED) is followed: reads, writes and deletes go on', async () => {
  const user = 'moving-user';
  expect((await put(a, user, 'github', { type: 'oauth2', access_token: 'before-move' })).status).toBe(201);
  const slot = hashSlot(keys.credential(user, 'github'));
  const from = await cluster.ownerOf(slot);
  const to = cluster.ports.find((port) => port !== from)!;
  await cluster.moveSlot(slot, to);

  const moved = cluster.nodeClient(to);
  try {
    expect(await moved.exists(keys.credential(user, 'github'))).toBe(1);
  } finally {
    moved.disconnect();
  }
  const read = await get(a, user, 'github');
  expect(read.status).toBe(200);
  expect(read.body.access_token).toBe('before-move');
  const written = await put(a, user, 'github', { type: 'oauth2', access_token: 'after-move' });
  expect(written.status).toBe(200);
  expect(written.body.version).toBeGreaterThan(read.body.version);
  expect((await get(a, user, 'github')).body.access_token).toBe('after-move');
  expect((await request(a.app).delete(`/tokens/${user}/github`).set('Authorization', as(a, 'writer'))).status).toBe(204);
  expect(await inspect.exists(keys.credential(user, 'github'))).toBe(0);
});

test('redis.waitReplicas: WAIT goes to the master that took the rotated refresh token, not to any node', async () => {
  const waiting = await startVault({ redis: cluster, keyPrefix: 'tvw:', clock: TestClock.realTime(), config: (standard) => ({ ...configure(standard), redis: { waitReplicas: 1 } }) });
  const monitors: { stop(): void }[] = [];
  try {
    const user = 'wait-user';
    expect((await put(waiting, user, 'flaky', { type: 'oauth2', access_token: 'at-0', refresh_token: 'rt-0', expires_in: 3600 })).status).toBe(201);
    const waits = new Map<number, number>(cluster.ports.map((port) => [port, 0]));
    for (const port of cluster.ports) {
      monitors.push(await monitorNode(port, (args) => args[0] === 'wait' && waits.set(port, waits.get(port)! + 1)));
    }
    await sleep(100);
    expect((await request(waiting.app).post(`/tokens/${user}/flaky/refresh`).set('Authorization', as(waiting, 'writer'))).status).toBe(200);
    const owner = await cluster.ownerOf(hashSlot(new Keys('tvw:').credential(user, 'flaky')));
    await waitFor(() => waits.get(owner)! > 0, 'WAIT on the owning master', 3000);
    expect([...waits].filter(([port, count]) => port !== owner && count > 0)).toEqual([]);
    // No replicas in this cluster: the shortfall is logged.
    await waitFor(() => waiting.logs.text().includes('acknowledged by fewer Redis replicas'), 'the WAIT shortfall warning', 3000);
  } finally {
    monitors.forEach((monitor) => monitor.stop());
    await waiting.close();
  }
});

test(`rewrap over all three masters completes with exact counts (${RECORDS} records); recount repairs drifted counters on every master`, async () => {
  const users = Array.from({ length: RECORDS }, (_, i) => `rw-${i}`);
  for (let i = 0; i < users.length; i += 50) {
    const batch = await Promise.all(users.slice(i, i + 50).map((user) => put(a, user, 'github', { type: 'oauth2', access_token: `at-${user}` })));
    expect(batch.every((res) => res.status === 201)).toBe(true);
  }
  expect(new Set((await ownersOf(users)).values()).size).toBe(3);

  await rotateTo('k2', [a]);
  const started = await request(a.app).post('/admin/rewrap').set('Authorization', as(a, 'admin'));
  expect(started.status).toBe(202);
  expect(started.body.job).toMatchObject({ state: 'running', target: 'k2', total: RECORDS });
  const job = await jobDone(a, started.body.job.id);
  expect(job).toMatchObject({ state: 'done', total: RECORDS, done: RECORDS, failed: 0 });
  expect(await recordsByKey(a)).toEqual([['k2', RECORDS]]);
  const cursor = await jobCursor(job.id);
  expect(Object.keys(cursor!.nodes).sort()).toEqual(cluster.ports.map((port) => `127.0.0.1:${port}`).sort());
  expect(Object.values(cursor!.nodes)).toEqual([null, null, null]);
  const reads = await Promise.all(users.filter((_, i) => i % 25 === 0).map((user) => get(a, user, 'github')));
  expect(reads.map((res) => res.status)).toEqual(reads.map(() => 200));

  // Drift one shard's counters on each master, then recount.
  const owner = await cluster.slotOwners();
  const drifted = [...new Map(Array.from({ length: SHARD_COUNT }, (_, shard) => [owner(hashSlot(keys.shardKey(shard, 'kek'))), shard])).values()];
  expect(drifted).toHaveLength(3);
  for (const shard of drifted) {
    await inspect.hset(keys.shardKey(shard, 'kek'), 'k2', 1000, 'k1', 7);
    await inspect.hset(keys.shardKey(shard, 'states'), 'active', 1000);
  }
  expect((await a.deps.keyAdmin.recordsByKek()).k1).toBe(21);
  const recount = await a.deps.keyAdmin.recount();
  expect(recount).toEqual({ shards: SHARD_COUNT, repaired: SHARD_COUNT, busy: [] });
  expect(await a.deps.keyAdmin.recordsByKek()).toEqual({ k2: RECORDS });
  expect(await a.deps.store.stateCounts()).toEqual({ active: RECORDS });
});

test('a rewrap job stopped mid-way is resumed by another replica from each master’s own cursor, and ends with exact counts', async () => {
  b = await startVault({ redis: cluster, keys: a.keys, clock: TestClock.realTime(), config: configure });
  await rotateTo('k3', [b, a]);
  const started = await request(a.app).post('/admin/rewrap').set('Authorization', as(a, 'admin'));
  const id = started.body.job.id as string;
  // Stop A once it is partway through the masters.
  await waitFor(async () => {
    const cursor = await jobCursor(id);
    return cursor && Object.values(cursor.nodes).some((at) => at !== '0' && at !== null) ? cursor : undefined;
  }, 'the job to be partway', 10_000);
  await a.deps.rewrap.stop();
  // A batch already under way still persists its cursor: read the job once it stopped changing.
  let atStop = await inspect.hgetall(keys.rewrapJob(id));
  for (;;) {
    await sleep(300);
    const again = await inspect.hgetall(keys.rewrapJob(id));
    if (JSON.stringify(again) === JSON.stringify(atStop)) break;
    atStop = again;
  }
  expect(atStop.state).toBe('running');
  expect(Number(atStop.done)).toBeLessThan(RECORDS);
  const position = JSON.parse(atStop.cursor!) as { nodes: Record<string, string | null> };

  // Every SCAN B sends from here on, per master.
  const scans = new Map<string, string[]>();
  const monitors: { stop(): void }[] = [];
  try {
    for (const port of cluster.ports) {
      const node = `127.0.0.1:${port}`;
      scans.set(node, []);
      monitors.push(await monitorNode(port, (args) => args[0] === 'scan' && args.includes(keys.sealedPattern()) && scans.get(node)!.push(args[1]!)));
    }
    await sleep(100);
    b.deps.rewrap.watch(); // takes the lease A gave up within one watch period (5 s)
    const job = await jobDone(b, id);
    expect(job).toMatchObject({ state: 'done', total: RECORDS, done: RECORDS, failed: 0 });
  } finally {
    monitors.forEach((monitor) => monitor.stop());
  }
  for (const [node, at] of Object.entries(position.nodes)) {
    const seen = scans.get(node)!;
    if (at === null) expect(seen).toEqual([]); // done before the stop: not walked again
    else expect(seen[0]).toBe(at); // resumed where A left it (or from the start, if A had not reached it)
  }
  expect(await recordsByKey(b)).toEqual([['k3', RECORDS]]);
});

test('slots moving during a rewrap make the walk take another pass, so no record is missed', async () => {
  const runner = b!;
  await rotateTo('k4', [a, runner]);
  // Walk order is by node address; move a slot holding records from the last master to the first,
  // once the first is done and the last not begun: its records are then where the walk has been.
  const order = cluster.ports.map((port) => `127.0.0.1:${port}`).sort();
  const [firstPort, lastPort] = [Number(order[0]!.split(':')[1]), Number(order.at(-1)!.split(':')[1])];
  const owner = await cluster.slotOwners();
  const user = Array.from({ length: RECORDS }, (_, i) => `rw-${i}`).find((candidate) => owner(hashSlot(keys.credential(candidate, 'github'))) === lastPort)!;
  const slot = hashSlot(keys.credential(user, 'github'));

  const started = await request(runner.app).post('/admin/rewrap').set('Authorization', as(runner, 'admin'));
  const id = started.body.job.id as string;
  await waitFor(async () => {
    const cursor = await jobCursor(id);
    return cursor && cursor.nodes[order[0]!] === null && cursor.nodes[order.at(-1)!] === '0';
  }, 'the first master to be done and the last not begun', 10_000);
  await cluster.moveSlot(slot, firstPort);

  const job = await jobDone(runner, id);
  expect(job).toMatchObject({ state: 'done', total: RECORDS, done: RECORDS, failed: 0 });
  expect((await jobCursor(id))!.pass).toBeGreaterThanOrEqual(2);
  expect(await recordsByKey(runner)).toEqual([['k4', RECORDS]]);
  expect((await get(runner, user, 'github')).body.access_token).toBe(`at-${user}`);
});

test('start-up warnings name each master that has no AOF or evicts keys', async () => {
  const [noAof, evicting] = cluster.ports;
  const setConfig = async (port: number, name: string, value: string) => {
    const node = cluster.nodeClient(port);
    try {
      await node.config('SET', name, value);
    } finally {
      node.disconnect();
    }
  };
  await setConfig(noAof!, 'appendonly', 'no');
  await setConfig(evicting!, 'maxmemory-policy', 'allkeys-lru');
  try {
    const warnings = await redisWarnings(a.deps.redis);
    expect(warnings).toHaveLength(2);
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^Redis Cluster master 127\\.0\\.0\\.1:${noAof} has no AOF persistence \\(appendonly no\\)`)),
        expect.stringMatching(new RegExp(`^Redis Cluster master 127\\.0\\.0\\.1:${evicting} maxmemory-policy is allkeys-lru`)),
      ]),
    );
  } finally {
    await setConfig(noAof!, 'appendonly', 'yes');
    await setConfig(evicting!, 'maxmemory-policy', 'noeviction');
  }
  expect(await redisWarnings(a.deps.redis)).toEqual([]);
});

test('/readyz pings every master: 503 while one of them is down, 200 once it is back', async () => {
  expect((await request(a.app).get('/readyz')).status).toBe(200);
  await cluster.killNode(cluster.ports[2]!);
  await waitFor(async () => (await request(a.app).get('/readyz')).status === 503, '/readyz to fail', 10_000);
  await cluster.restartNode(cluster.ports[2]!);
  await waitFor(async () => (await request(a.app).get('/readyz')).status === 200, '/readyz to recover', 15_000);
  expect((await get(a, 'rw-0', 'github')).status).toBe(200);
});
