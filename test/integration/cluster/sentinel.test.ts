import request from 'supertest';
import { redisWarnings } from '../../../src/store/redis-checks';
import { startVault, type TestVault } from '../../helpers/app';
import { waitFor } from '../../helpers/checks';
import { SENTINEL_GROUP, SentinelGroup } from '../../helpers/redis-sentinel';

/**
 * The vault on a Sentinel group (one master, one replica, one sentinel with quorum 1): it finds
 * the master through the sentinel, warns about that master's persistence, and after a failover
 * goes on serving the same data from the new master.
 */
let group: SentinelGroup;
let vault: TestVault;
const USERS = 20;

beforeAll(async () => {
  group = await SentinelGroup.start();
  vault = await startVault({ redis: group });
}, 60_000);

afterAll(async () => {
  await vault.close();
  await group.stop();
});

const put = (user: string, token: string) =>
  request(vault.app).put(`/tokens/${user}/github`).set('Authorization', vault.auth(vault.keys.writer)).send({ type: 'oauth2', access_token: token });
const get = (user: string) => request(vault.app).get(`/tokens/${user}/github`).set('Authorization', vault.auth(vault.keys.reader));

test('the vault reaches the master through the sentinel and stores credentials there', async () => {
  const created = await Promise.all(Array.from({ length: USERS }, (_, i) => put(`s-${i}`, `at-${i}`)));
  expect(created.map((res) => res.status)).toEqual(created.map(() => 201));
  expect((await get('s-3')).body.access_token).toBe('at-3');
  const master = group.nodeClient(await group.masterPort());
  try {
    expect(await master.exists(vault.deps.keys.credential('s-3', 'github'))).toBe(1);
  } finally {
    master.disconnect();
  }
});

test('start-up warnings name the master (and its group) when it has no AOF', async () => {
  const port = await group.masterPort();
  const master = group.nodeClient(port);
  try {
    await master.config('SET', 'appendonly', 'no');
    expect(await redisWarnings(vault.deps.redis)).toEqual([
      expect.stringMatching(new RegExp(`^Redis master 127\\.0\\.0\\.1:${port} \\(sentinel group ${SENTINEL_GROUP}\\) has no AOF persistence \\(appendonly no\\)`)),
    ]);
    await master.config('SET', 'appendonly', 'yes');
    expect(await redisWarnings(vault.deps.redis)).toEqual([]);
  } finally {
    master.disconnect();
  }
});

test('after SENTINEL FAILOVER the vault serves the same data from the new master, and writes there (503s during the switch only)', async () => {
  const before = await group.masterPort();
  const after = await group.failover();
  expect(after).not.toBe(before);

  // Reads until every one answers 200: a 503 (Redis unavailable) is allowed while the client switches.
  const statuses = new Set<number>();
  await waitFor(
    async () => {
      const answers = await Promise.all(Array.from({ length: USERS }, (_, i) => get(`s-${i}`)));
      answers.forEach((res) => statuses.add(res.status));
      return answers.every((res, i) => res.status === 200 && res.body.access_token === `at-${i}`);
    },
    'every credential to be served from the new master',
    20_000,
  );
  expect([...statuses].filter((status) => status !== 200 && status !== 503)).toEqual([]);

  await waitFor(async () => (await put('s-0', 'after-failover')).status === 200, 'a write to succeed on the new master', 20_000);
  expect((await get('s-0')).body.access_token).toBe('after-failover');
  const master = group.nodeClient(after);
  try {
    expect(await master.hget(vault.deps.keys.credential('s-0', 'github'), 'version')).not.toBeNull();
  } finally {
    master.disconnect();
  }
  // The client may reconnect once more when the sentinel's switch notice arrives: readiness settles to 200.
  await waitFor(async () => (await request(vault.app).get('/readyz')).status === 200, '/readyz to answer 200', 10_000);
});
