import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { decodeEnvelope } from '../../../src/crypto/envelope';
import { Keys } from '../../../src/store/keys';
import { freePort, RedisServer } from '../../helpers/redis-server';
import { buildVault, http, VaultProcess, vaultEnv, type BuiltVault, type HttpResult, type LogLine } from '../../helpers/vault-process';

/**
 * Key rotation across real replicas (DESIGN §6, README "The keyring"): two built vault processes
 * (NODE_ENV=production) on one Redis, one caller key from the environment, and EACH WITH ITS OWN
 * keyring file, as two pods mid-rollout would have. What is checked is what an operator and a
 * caller see: the active KEK id in Redis, the `kek` of each record in Redis, GET /admin/keys,
 * the rewrap job's progress, and the tokens handed back.
 *
 * Keyring files come in two shapes, so each way of reloading is tested on its own:
 * - `plain`: <folder>/keyring.json is the file; the vault watches <folder>, so rewriting it
 *   reloads the keyring by itself;
 * - `hidden`: <folder>/keyring.json is a symlink to a file in a folder the vault does not watch,
 *   so changing it reaches the vault only through SIGHUP, or through the re-read a replica does
 *   when it meets a record sealed under a key it does not hold.
 *
 * Each scenario uses a key prefix of its own, so it sees only its own records and heartbeats.
 */

const PROVIDER = 'github';
const material = { k1: randomBytes(32).toString('base64'), k2: randomBytes(32).toString('base64'), k3: randomBytes(32).toString('base64') };
type KeyId = keyof typeof material;

let built: BuiltVault;
let redis: RedisServer;
let inspect: Redis;
let work: string;
const apiKey = `tv_rotation_${randomBytes(16).toString('hex')}`;
const auth = { authorization: `Bearer ${apiKey}` };
const spawned: VaultProcess[] = [];
/** Extra Redis connections a test opened (a MONITOR), closed after it whatever happened. */
const connections: Redis[] = [];

beforeAll(async () => {
  // Settled one by one, so a failed build still leaves the started Redis for afterAll to stop.
  const [building, starting] = await Promise.allSettled([buildVault(), RedisServer.start()]);
  if (building.status === 'fulfilled') built = building.value;
  if (starting.status === 'fulfilled') redis = starting.value;
  if (building.status === 'rejected') throw building.reason;
  if (starting.status === 'rejected') throw starting.reason;
  inspect = redis.client();
  work = mkdtempSync(join(tmpdir(), 'tv-rotation-'));
}, 120_000);

afterEach(async () => {
  await Promise.all(spawned.map((vault) => vault.kill()));
  connections.splice(0).forEach((connection) => connection.disconnect());
});

afterAll(async () => {
  await Promise.all(spawned.map((vault) => vault.kill()));
  inspect?.disconnect();
  await redis?.stop();
  built?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

// ---- replicas -----------------------------------------------------------------------------------

interface Replica {
  name: string;
  vault: VaultProcess;
  port: number;
}

/** One replica's keyring file; `write` replaces it atomically (a temp file renamed over it). */
interface KeyringFile {
  /** The path in the replica's config. */
  path: string;
  write(active: KeyId, ids: KeyId[]): void;
}

interface Scenario {
  keys: Keys;
  prefix: string;
}

let scenarios = 0;
function scenario(): Scenario {
  const prefix = `rot${++scenarios}:`;
  return { prefix, keys: new Keys(prefix) };
}

function keyringJson(active: KeyId, ids: KeyId[]): string {
  return JSON.stringify({ active, keys: Object.fromEntries(ids.map((id) => [id, material[id]])) });
}

let keyrings = 0;
function keyringFile(shape: 'plain' | 'hidden', active: KeyId, ids: KeyId[]): KeyringFile {
  const folder = join(work, `keyring-${++keyrings}`);
  mkdirSync(folder);
  const path = join(folder, 'keyring.json');
  let real = path;
  if (shape === 'hidden') {
    const hidden = join(work, `keyring-${keyrings}-unwatched`);
    mkdirSync(hidden);
    real = join(hidden, 'keyring.json');
  }
  const write = (activeId: KeyId, keyIds: KeyId[]) => {
    const temp = `${real}.${randomBytes(3).toString('hex')}.tmp`;
    writeFileSync(temp, keyringJson(activeId, keyIds), { mode: 0o600 });
    renameSync(temp, real);
  };
  write(active, ids);
  if (shape === 'hidden') symlinkSync(real, path);
  return { path, write };
}

let configs = 0;
/** Writes this replica's YAML (its own keyring file, the shared caller key) and starts the built server; waits until it listens. */
async function startReplica(sc: Scenario, name: string, keyring: KeyringFile, extra: Record<string, unknown> = {}): Promise<Replica> {
  const file = join(work, `config-${++configs}.yaml`);
  writeFileSync(
    file,
    stringify({
      redis: { url: { env: 'REDIS_URL' }, keyPrefix: sc.prefix },
      keyring: { file: keyring.path },
      callers: [{ name: 'backend', key: { env: 'BACKEND_API_KEY' }, scopes: ['tokens:read', 'tokens:write', 'admin'], providers: ['*'] }],
      providers: {
        [PROVIDER]: {
          type: 'oauth2',
          clientId: 'gh-client',
          clientSecret: { env: 'GITHUB_CLIENT_SECRET' },
          clientAuth: 'client_secret_post',
          tokenUrl: 'https://github.com/login/oauth/access_token',
        },
      },
      ...extra,
    }),
  );
  const port = await freePort();
  const vault = VaultProcess.startBuilt(built, {
    cwd: work,
    env: vaultEnv({
      NODE_ENV: 'production',
      TOKEN_VAULT_CONFIG: file,
      PORT: String(port),
      REDIS_URL: redis.url,
      BACKEND_API_KEY: apiKey,
      GITHUB_CLIENT_SECRET: 'gh-secret',
      LOG_LEVEL: 'info',
    }),
  });
  spawned.push(vault);
  await vault.waitForListening();
  return { name, vault, port };
}

/** The replica id a process publishes in its heartbeat: `<host>:<pid>:<hex>`. */
async function replicaIdOf(sc: Scenario, replica: Replica): Promise<string> {
  const ids = await inspect.hkeys(sc.keys.replicas());
  const id = ids.find((candidate) => candidate.split(':')[1] === String(replica.vault.pid));
  if (!id) throw new Error(`no heartbeat of ${replica.name} (pid ${replica.vault.pid}) among ${ids.join(', ')}`);
  return id;
}

// ---- the API and Redis as an operator sees them -------------------------------------------------

function token(user: string, n = 0): string {
  return `at-${user}-${n}`;
}

async function put(replica: Replica, user: string, n = 0): Promise<void> {
  const res = await http(replica.port, 'PUT', `/tokens/${user}/${PROVIDER}`, { headers: auth, body: { type: 'oauth2', access_token: token(user, n) } });
  if (res.status !== 201 && res.status !== 200) throw new Error(`PUT ${user} through ${replica.name}: ${res.status} ${res.text}`);
}

function get(replica: Replica, user: string): Promise<HttpResult> {
  return http(replica.port, 'GET', `/tokens/${user}/${PROVIDER}`, { headers: auth });
}

function errorCode(res: HttpResult): string | undefined {
  return (res.body as { error?: { code?: string } } | undefined)?.error?.code;
}

function accessToken(res: HttpResult): string | undefined {
  return (res.body as { access_token?: string } | undefined)?.access_token;
}

interface KeyStatus {
  active: string | null;
  keys: { id: string; records: number; active: boolean; replicas: string[] }[];
}

async function keyStatus(replica: Replica): Promise<KeyStatus> {
  const res = await http(replica.port, 'GET', '/admin/keys', { headers: auth });
  expect(res.status).toBe(200);
  return res.body as KeyStatus;
}

/** The record's clear `kek` field, checked against the KEK id inside its sealed blob. */
async function kekOf(sc: Scenario, user: string): Promise<string | null> {
  const key = sc.keys.credential(user, PROVIDER);
  const [kek, blob] = await Promise.all([inspect.hget(key, 'kek'), inspect.hgetBuffer(key, 'blob')]);
  if (kek === null || blob === null) return null;
  expect(decodeEnvelope(blob).kekId).toBe(kek);
  return kek;
}

/** IV ‖ ciphertext ‖ tag of a record: what a rewrap must leave byte-identical. */
async function sealedBody(sc: Scenario, user: string): Promise<string> {
  const parts = decodeEnvelope((await inspect.hgetBuffer(sc.keys.credential(user, PROVIDER), 'blob'))!);
  return Buffer.concat([parts.iv, parts.ciphertext, parts.tag]).toString('hex');
}

function activeKek(sc: Scenario): Promise<string | null> {
  return inspect.get(sc.keys.activeKek());
}

/** Log lines matching `match` so far; with waitForMore, waits until there is one more than `seen`. */
function matching(replica: Replica, match: (line: LogLine) => boolean): LogLine[] {
  return replica.vault.logs().filter(match);
}

async function waitForMore(replica: Replica, match: (line: LogLine) => boolean, seen: number, timeoutMs: number, what: string): Promise<LogLine> {
  const lines = await waitUntil(async () => {
    const found = matching(replica, match);
    return found.length > seen ? found : undefined;
  }, timeoutMs, `${replica.name}: ${what}`);
  return lines[seen]!;
}

const reloaded = (why: string) => (line: LogLine) => line.msg === 'keyring reloaded' && line.why === why;
const anyReload = (line: LogLine) => line.msg === 'keyring reloaded' || line.msg.startsWith('keyring reload refused');
const unknownKeyReread = (outcome: string) => (line: LogLine) => line.audit === true && line.msg === 'key.reload' && line.caller === 'replica:unknown-key' && line.outcome === outcome;

async function waitUntil<T>(probe: () => Promise<T | undefined | false>, timeoutMs: number, what: string, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined && found !== false) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `task` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await task(items[i]!, i);
      }
    }),
  );
  return results;
}

/** Every user's GET on `replica`: the users whose answer is not 200 with their latest token. */
async function unreadable(replica: Replica, expected: Map<string, string>): Promise<string[]> {
  const wrong = await pool([...expected], 32, async ([user, want]) => {
    const res = await get(replica, user);
    return res.status === 200 && accessToken(res) === want ? null : `${user}: ${res.status} ${res.text.slice(0, 120)}`;
  });
  return wrong.filter((entry): entry is string => entry !== null);
}

// ---- scenarios ---------------------------------------------------------------------------------

test('different keyrings: k2 installed on A only stays inactive and A keeps sealing under k1; once B holds k2 it becomes active within a heartbeat and both seal under k2; everything reads back on both', async () => {
  const sc = scenario();
  // A reloads only on SIGHUP (its file is behind a symlink the vault does not watch); B only through the file watch.
  const aKeyring = keyringFile('hidden', 'k1', ['k1']);
  const bKeyring = keyringFile('plain', 'k1', ['k1']);
  const a = await startReplica(sc, 'A', aKeyring);
  const b = await startReplica(sc, 'B', bKeyring);
  const [aId, bId] = [await replicaIdOf(sc, a), await replicaIdOf(sc, b)];
  const written = new Map<string, string>();
  const write = async (replica: Replica, user: string) => {
    await put(replica, user);
    written.set(user, token(user));
  };

  await write(a, 'one-a0');
  await write(b, 'one-b0');
  expect(await keyStatus(a)).toEqual({ active: 'k1', keys: [{ id: 'k1', records: 2, active: true, replicas: [aId, bId].sort() }] });

  // k2 reaches A's file; A reloads on SIGHUP.
  aKeyring.write('k2', ['k1', 'k2']);
  const notActivated = (line: LogLine) => line.msg === 'key not activated yet: some live replicas do not hold it';
  a.vault.signal('SIGHUP');
  const aReload = await waitForMore(a, reloaded('SIGHUP'), 0, 5000, 'reload on SIGHUP');
  expect(aReload.active).toBe('k1');
  expect((await waitForMore(a, notActivated, 0, 5000, 'k2 waiting for B')).waitingFor).toEqual([bId]);

  const halfway = async () => {
    expect(await activeKek(sc)).toBe('k1');
    for (const replica of [a, b]) {
      expect(await keyStatus(replica)).toEqual({
        active: 'k1',
        keys: [
          { id: 'k1', records: written.size, active: true, replicas: [aId, bId].sort() },
          { id: 'k2', records: 0, active: false, replicas: [aId] },
        ],
      });
    }
    // A holds k2 and its keyring says k2, yet it seals under the shared active key k1: B could not open k2.
    const user = `one-a${written.size}`;
    await write(a, user);
    expect(await kekOf(sc, user)).toBe('k1');
    const other = `one-b${written.size}`;
    await write(b, other);
    expect(await kekOf(sc, other)).toBe('k1');
  };
  await halfway();
  // Still so after A's next periodic heartbeat, which tries the activation again (≤ 5 s).
  await waitForMore(a, notActivated, 1, 7000, 'a second attempt to activate k2');
  await halfway();
  expect(matching(b, anyReload)).toEqual([]); // B never reloaded: A's file is not B's

  // k2 reaches B's file; B's file watch reloads it, and k2 becomes the active key.
  const bFileAt = Date.now();
  bKeyring.write('k2', ['k1', 'k2']);
  await waitUntil(async () => (await activeKek(sc)) === 'k2', 6000, 'tv:{keys}:active to become k2');
  const activatedAt = Date.now();
  const activatedAfter = activatedAt - bFileAt;
  expect((await waitForMore(b, reloaded('keyring file changed'), 0, 2000, 'reload by the file watch')).active).toBe('k2');
  // A learns the switch on its next heartbeat (every 5 s): from then on its writes are sealed under k2.
  let probes = 0;
  await waitUntil(
    async () => {
      const user = `one-probe${++probes}`;
      await write(a, user);
      return (await kekOf(sc, user)) === 'k2';
    },
    6000,
    "A's writes to be sealed under k2",
    200,
  );
  const switchedAfter = Date.now() - activatedAt;
  for (const [replica, user] of [
    [a, 'one-after-a'],
    [b, 'one-after-b'],
  ] as const) {
    await write(replica, user);
    expect(await kekOf(sc, user)).toBe('k2');
  }

  for (const replica of [a, b]) expect(await unreadable(replica, written)).toEqual([]);
  const kekCounts: Record<string, number> = {};
  for (const user of written.keys()) {
    const kek = (await kekOf(sc, user))!;
    kekCounts[kek] = (kekCounts[kek] ?? 0) + 1;
  }
  expect(await keyStatus(b)).toEqual({
    active: 'k2',
    keys: [
      { id: 'k1', records: kekCounts.k1, active: false, replicas: [aId, bId].sort() },
      { id: 'k2', records: kekCounts.k2, active: true, replicas: [aId, bId].sort() },
    ],
  });
  // k1: the two first writes and two rounds of two while only A held k2, and A's probes before it learnt the switch.
  expect(kekCounts).toEqual({ k1: 6 + probes - 1, k2: 3 });
  expect(activatedAfter).toBeLessThan(3000); // the watch's 500 ms debounce, then B's reload activates k2 at once
  expect(switchedAfter).toBeLessThan(6000); // one heartbeat of A
}, 45_000);

test('a replica that meets a record sealed under a key it does not hold re-reads its keyring once (at most every 5 s): 500 credential_unreadable while its file lacks k3, 200 once the file has it, with no signal', async () => {
  const sc = scenario();
  const aKeyring = keyringFile('hidden', 'k1', ['k1']);
  const bKeyring = keyringFile('hidden', 'k1', ['k1']); // changes reach B only through its own re-read
  const a = await startReplica(sc, 'A', aKeyring);
  const b = await startReplica(sc, 'B', bKeyring);
  await put(b, 'two-k1');

  // B stops (SIGTERM removes its heartbeat at once), so A alone is live and can activate k3.
  b.vault.signal('SIGTERM');
  expect(await b.vault.waitForExit()).toEqual({ code: 0, signal: null });
  expect(await inspect.hkeys(sc.keys.replicas())).toEqual([await replicaIdOf(sc, a)]);
  aKeyring.write('k3', ['k1', 'k3']);
  a.vault.signal('SIGHUP');
  expect((await waitForMore(a, reloaded('SIGHUP'), 0, 5000, 'reload on SIGHUP')).active).toBe('k3');
  expect(await activeKek(sc)).toBe('k3');
  const sealedK3 = ['two-k3-0', 'two-k3-1', 'two-k3-2'];
  for (const user of sealedK3) {
    await put(a, user);
    expect(await kekOf(sc, user)).toBe('k3');
  }

  // B comes back with a keyring that lacks k3. Its start does not move the shared active key
  // back to its own k1 (a replaced key returns only through an explicit reload; keys.test.ts).
  const b2 = await startReplica(sc, 'B2', bKeyring);
  const k1Read = await get(b2, 'two-k1');
  expect([k1Read.status, accessToken(k1Read)]).toEqual([200, token('two-k1')]);
  const firstAskedAt = Date.now(); // B's re-read happens after this, so its next one is ≥ 5 s later
  const refused = await get(b2, sealedK3[0]!);
  expect([refused.status, errorCode(refused)]).toEqual([500, 'credential_unreadable']);
  expect(refused.text).not.toContain(token(sealedK3[0]!));
  // It did re-read its keyring before failing closed; the file still lacked k3, so the re-read was refused.
  await waitForMore(b2, unknownKeyReread('refused'), 0, 2000, 'the refused re-read on the unknown key');

  // k3 reaches B's file, with no SIGHUP and no file-watch event.
  bKeyring.write('k3', ['k1', 'k3']);
  // Within 5 s of the last re-read B does not read the file again: still 500.
  const tooSoon = await get(b2, sealedK3[1]!);
  expect(Date.now() - firstAskedAt).toBeLessThan(5000);
  expect([tooSoon.status, errorCode(tooSoon)]).toEqual([500, 'credential_unreadable']);
  expect(matching(b2, unknownKeyReread('refused'))).toHaveLength(1);

  // Then the next GET that meets k3 re-reads the keyring, finds k3 and answers 200.
  const meanwhile: string[] = [];
  const answered = await waitUntil(
    async () => {
      const res = await get(b2, sealedK3[0]!);
      if (res.status === 200) return res;
      meanwhile.push(`${res.status} ${errorCode(res)}`);
      return undefined;
    },
    8000,
    'B to answer 200 after re-reading its keyring',
    250,
  );
  expect(new Set(meanwhile)).toEqual(new Set(['500 credential_unreadable']));
  const recoveredAfter = Date.now() - firstAskedAt;
  expect(accessToken(answered)).toBe(token(sealedK3[0]!));
  // Audit entries are written asynchronously: wait for the line rather than expect it already there.
  await waitForMore(b2, unknownKeyReread('ok'), 0, 2000, 'the successful re-read on the unknown key');
  expect(matching(b2, unknownKeyReread('ok'))).toHaveLength(1);
  expect(matching(b2, unknownKeyReread('refused'))).toHaveLength(1); // once per 5 s, however many GETs failed
  expect(matching(b2, anyReload)).toEqual([]); // neither SIGHUP nor the file watch did it
  expect(recoveredAfter).toBeGreaterThanOrEqual(5000);
  expect(recoveredAfter).toBeLessThan(8000);
  const all = new Map(['two-k1', ...sealedK3].map((user) => [user, token(user)]));
  expect(await unreadable(b2, all)).toEqual([]);
  expect(await unreadable(a, all)).toEqual([]);
  // B's keyring now wants k3 and every live replica holds it: k3 is the active key.
  await waitUntil(async () => (await activeKek(sc)) === 'k3', 6000, 'k3 to be the active key');
  expect((await keyStatus(b2)).keys.find((key) => key.id === 'k3')).toMatchObject({ records: 3, active: true });
}, 45_000);

test('replica killed mid-rewrap: after the 30 s lease ends the other replica resumes the job from its cursor and finishes it; every record is under k2 and readable', async () => {
  const sc = scenario();
  const RECORDS = 3000;
  const aKeyring = keyringFile('hidden', 'k1', ['k1']);
  const bKeyring = keyringFile('hidden', 'k1', ['k1']);
  const rewrap = { rewrap: { recordsPerSecond: 400 } };
  const a = await startReplica(sc, 'A', aKeyring, rewrap);
  const b = await startReplica(sc, 'B', bKeyring, rewrap);
  const bId = await replicaIdOf(sc, b);

  const users = Array.from({ length: RECORDS }, (_, i) => `three-${i}`);
  await pool(users, 64, (user, i) => put(i % 2 === 0 ? a : b, user));
  const expected = new Map(users.map((user) => [user, token(user)]));
  const sample = users.filter((_, i) => i % 100 === 0);
  const before = await Promise.all(sample.map((user) => sealedBody(sc, user)));
  expect((await keyStatus(a)).keys).toEqual([{ id: 'k1', records: RECORDS, active: true, replicas: expect.any(Array) }]);

  // Both replicas get k1 + k2 with k2 active.
  for (const [replica, file] of [
    [a, aKeyring],
    [b, bKeyring],
  ] as const) {
    file.write('k2', ['k1', 'k2']);
    replica.vault.signal('SIGHUP');
    await waitForMore(replica, reloaded('SIGHUP'), 0, 5000, 'reload on SIGHUP');
  }
  expect(await activeKek(sc)).toBe('k2');

  const started = await http(a.port, 'POST', '/admin/rewrap', { headers: auth });
  expect(started.status).toBe(202);
  const job = (started.body as { job: { id: string; state: string; total: number; target: string } }).job;
  expect(job).toMatchObject({ state: 'running', total: RECORDS, target: 'k2' });
  const jobKey = sc.keys.rewrapJob(job.id);
  type JobView = { state: string; done: number; failed: number; total: number; skipped: number };
  const progress = async (replica: Replica): Promise<JobView> => {
    const res = await http(replica.port, 'GET', `/admin/rewrap/${job.id}`, { headers: auth });
    expect(res.status).toBe(200);
    return (res.body as { job: JobView }).job;
  };

  // One plain connection to each master: MONITOR sees one node, and on a cluster the job keeps a
  // SCAN cursor per master.
  const masters = redis.masterClients();
  connections.push(...masters.values());
  // The job's cursor as each master's SCAN cursor (store/topology.ts walkStep): on a cluster,
  // JSON naming each master's, null once it is walked through; on one Redis, the cursor itself.
  const cursorsOf = (cursor: string): Map<string, string | null> =>
    redis.kind === 'cluster'
      ? new Map(Object.entries((JSON.parse(cursor) as { nodes: Record<string, string | null> }).nodes))
      : new Map([[[...masters.keys()][0]!, cursor]]);

  const underway = await waitUntil(async () => {
    const view = await progress(a);
    return view.done > 0 ? view : undefined;
  }, 10_000, 'the job to make progress on A');
  expect(underway.state).toBe('running');
  const [owner] = await inspect.hmget(jobKey, 'owner');
  expect(owner?.split(':')[1]).toBe(String(a.vault.pid)); // A runs it
  if (redis.kind === 'cluster') {
    // Masters are walked one after the other: A is killed once it has walked through one and
    // begun the next, so B has a master to skip and one to go on with from A's cursor.
    await waitUntil(async () => {
      const cursors = [...cursorsOf((await inspect.hget(jobKey, 'cursor'))!).values()];
      return cursors.includes(null) && cursors.some((cursor) => cursor !== null && cursor !== '0');
    }, 15_000, 'A to walk through one master and begin the next');
  }

  await a.vault.kill();
  const killedAt = Date.now();
  // Commands A wrote to its sockets just before dying may still reach Redis after its exit (a
  // cursor update, a lease renewal): read the job once it has stopped changing.
  let atKill = await inspect.hgetall(jobKey);
  for (;;) {
    await sleep(300);
    const again = await inspect.hgetall(jobKey);
    if (JSON.stringify(again) === JSON.stringify(atKill)) break;
    atKill = again;
  }
  expect(atKill.state).toBe('running');
  expect(Number(atKill.done)).toBeLessThan(RECORDS);
  const reached = cursorsOf(atKill.cursor!);
  expect([...reached.keys()].sort()).toEqual([...masters.keys()].sort());
  expect([...reached.values()].filter((cursor) => cursor !== '0')).not.toEqual([]); // A got somewhere
  const leaseUntil = Number(atKill.lease_until);
  // From here on every SCAN of the credential records is B's: record their cursors on each master (MONITOR).
  const scans = new Map<string, string[]>();
  for (const [master, client] of masters) {
    const monitor = await client.monitor();
    connections.push(monitor);
    const cursors: string[] = [];
    scans.set(master, cursors);
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === 'scan' && args.includes(sc.keys.sealedPattern())) cursors.push(args[1]!);
    });
  }

  // B's watch (every 5 s) takes the job over once A's lease has lapsed, and finishes it.
  const resumed = await waitForMore(b, (line) => line.msg === 'resuming a rewrap job whose replica stopped', 0, 45_000, 'B to resume the job');
  const resumedAt = Number(resumed.time);
  expect(resumed.job).toBe(job.id);
  expect(resumedAt).toBeGreaterThanOrEqual(leaseUntil - 50); // never while A's lease was alive
  expect(resumedAt).toBeLessThan(leaseUntil + 5000 + 1000); // within one watch period after it lapsed
  const finished = await waitUntil(async () => {
    const view = await progress(b);
    return view.state !== 'running' ? view : undefined;
  }, 20_000, 'the job to finish on B', 200);
  const doneAfterKill = Date.now() - killedAt;
  // B went on from the cursor A persisted on each master, not from the start of the keyspace: its
  // first SCAN there is A's cursor and none goes back to 0; a master A had walked through
  // (cursor null) gets none.
  const resumedFrom = (cursors: string[]) => ({ from: cursors[0] ?? null, restarted: cursors.slice(1).includes('0') });
  expect(new Map([...scans].map(([master, cursors]) => [master, resumedFrom(cursors)]))).toEqual(
    new Map([...reached].map(([master, cursor]) => [master, { from: cursor, restarted: false }])),
  );

  expect(finished).toMatchObject({ state: 'done', failed: 0, total: RECORDS });
  expect(finished.done).toBeGreaterThanOrEqual(Number(atKill.done));
  expect(finished.done).toBeLessThanOrEqual(RECORDS);
  expect((await inspect.hget(jobKey, 'owner'))).toBe(`${bId}:rewrap`);
  expect(await inspect.get(sc.keys.rewrapCurrent())).toBeNull();
  const status = await keyStatus(b);
  expect(status.active).toBe('k2');
  expect(status.keys.map((key) => [key.id, key.records])).toEqual([
    ['k1', 0],
    ['k2', RECORDS],
  ]);
  // Every record in Redis is under k2, and only its wrapped data key changed.
  const keks = await pool(users, 64, (user) => kekOf(sc, user));
  expect(keks.filter((kek) => kek !== 'k2')).toEqual([]);
  expect(await Promise.all(sample.map((user) => sealedBody(sc, user)))).toEqual(before);
  expect(await unreadable(b, expected)).toEqual([]);
  expect(b.vault.logs().filter((line) => line.msg === 'rewrap: record could not be opened')).toEqual([]);
  expect(doneAfterKill).toBeLessThan(60_000);
}, 120_000);
