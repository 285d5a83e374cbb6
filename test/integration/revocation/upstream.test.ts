import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import request from 'supertest';
import type { DomainEvent } from '../../../src/events/event-bus';
import { parseRevocationMember, shardOf } from '../../../src/store/keys';
import { startVault, TestClock, type TestVault } from '../../helpers/app';
import { OidcServer, type RecordedTokenRequest } from '../../helpers/providers/oidc';
import { RedisServer } from '../../helpers/redis-server';

/**
 * Upstream revocation (RFC 7009) when a caller deletes a credential, against a real OAuth
 * server (oidc-provider): the refresh token first with its hint, then the access token; the
 * provider stops honouring both. A provider that is down is retried in the background until it
 * is back; the credential is gone locally at once whatever the provider does.
 */

/** leaseSeconds 5: provider calls time out after 1666 ms, leased revocations come back after 5 s. */
const LEASE_SECONDS = 5;

let redis: RedisServer;
let inspect: Redis;
let oidc: OidcServer;
let vault: TestVault;
let dir: string;
const events: DomainEvent[] = [];
const material = { k1: randomBytes(32).toString('base64'), k2: randomBytes(32).toString('base64') };

function writeKeyring(active: keyof typeof material, ids: (keyof typeof material)[]): void {
  writeFileSync(join(dir, 'keyring.json'), JSON.stringify({ active, keys: Object.fromEntries(ids.map((id) => [id, material[id]])) }));
}

beforeAll(async () => {
  [redis, oidc] = await Promise.all([RedisServer.start(), OidcServer.start({ accessTtlSeconds: 3600, rotation: true })]);
  inspect = redis.client();
  dir = mkdtempSync(join(tmpdir(), 'tv-revocation-'));
  writeKeyring('k1', ['k1']);
  vault = await startVault({
    redis,
    clock: TestClock.realTime(),
    scheduler: true,
    deps: { pollMs: 100 },
    config: (standard) => {
      const providers = standard.providers as Record<string, Record<string, unknown>>;
      const oidcProvider = { type: 'oauth2', clientId: oidc.clients.basic.id, clientSecret: oidc.clients.basic.secret, clientAuth: 'client_secret_basic', tokenUrl: oidc.tokenUrl };
      providers.oidc = { ...oidcProvider, revocationUrl: oidc.revocationUrl };
      providers['oidc-post'] = { ...oidcProvider, clientId: oidc.clients.post.id, clientSecret: oidc.clients.post.secret, clientAuth: 'client_secret_post', revocationUrl: oidc.revocationUrl };
      // The same server, configured without a revocation endpoint.
      providers['oidc-norevoke'] = oidcProvider;
      standard.refresh = { leaseSeconds: LEASE_SECONDS };
      standard.keyring = { file: join(dir, 'keyring.json') };
      return standard;
    },
  });
  vault.deps.events.subscribe((event) => events.push(event));
});

afterAll(async () => {
  inspect?.disconnect();
  await vault?.close();
  await oidc?.stop();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await oidc.reset();
});

const writer = () => vault.auth(vault.keys.writer);

async function connect(user: string, provider = 'oidc'): Promise<{ access: string; refresh: string }> {
  const client = provider === 'oidc-post' ? 'post-client' : 'basic-client';
  const issued = await oidc.issue({ clientId: client });
  await request(vault.app)
    .put(`/tokens/${user}/${provider}`)
    .set('Authorization', writer())
    .send({ type: 'oauth2', access_token: issued.access_token, refresh_token: issued.refresh_token, expires_in: issued.expires_in })
    .expect(201);
  return { access: issued.access_token, refresh: issued.refresh_token };
}

async function revocationRequests(): Promise<RecordedTokenRequest[]> {
  return (await oidc.requests()).filter((r) => r.path === '/token/revocation');
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Queue entries and sealed records of deleted credentials waiting for the provider, in a user's shard. */
async function pendingRevocations(user: string): Promise<string[]> {
  return (await inspect.zrange(vault.deps.keys.revocations(user), '0', '-1')).filter((member) => parseRevocationMember(member)?.user === user);
}

async function kekCount(user: string): Promise<number> {
  return Number((await inspect.hget(vault.deps.keys.kekCounts(user), 'k1')) ?? 0);
}

test('DELETE revokes the refresh token (with its hint) and then the access token, with client authentication; the provider stops honouring both', async () => {
  const tokens = await connect('rv-basic');
  expect(await oidc.active(tokens.access)).toBe(true);

  await request(vault.app).delete('/tokens/rv-basic/oidc').set('Authorization', writer()).expect(204);
  await request(vault.app).get('/tokens/rv-basic/oidc').set('Authorization', writer()).expect(404);
  await waitFor(async () => (await pendingRevocations('rv-basic')).length === 0, 'the revocation to finish');

  const sent = await revocationRequests();
  expect(sent.map((r) => [r.form.token, r.form.token_type_hint])).toEqual([
    [tokens.refresh, 'refresh_token'],
    [tokens.access, 'access_token'],
  ]);
  const basic = `Basic ${Buffer.from(`${oidc.clients.basic.id}:${oidc.clients.basic.secret}`).toString('base64')}`;
  for (const r of sent) expect(r.headers.authorization).toBe(basic);
  expect(await oidc.active(tokens.access)).toBe(false);
  expect(await oidc.active(tokens.refresh)).toBe(false);
  expect((await oidc.refresh(tokens.refresh)).body.error).toBe('invalid_grant');

  // Nothing of the credential is left: the sealed copy is gone and no longer counted under its key.
  expect(await inspect.keys(`*rv-basic*`)).toEqual([]);
  expect(await kekCount('rv-basic')).toBe(0);
  expect(vault.logs.audit()).toContainEqual(expect.objectContaining({ action: 'credential.revoke', user: 'rv-basic', provider: 'oidc', outcome: 'ok', result: 'revoked' }));
  expect(events).toContainEqual(expect.objectContaining({ type: 'token.revoked', user: 'rv-basic', provider: 'oidc', reason: 'deleted', by: 'writer' }));
});

test('client_secret_post providers send their credentials in the form', async () => {
  const tokens = await connect('rv-post', 'oidc-post');
  await request(vault.app).delete('/tokens/rv-post/oidc-post').set('Authorization', writer()).expect(204);
  await waitFor(async () => (await pendingRevocations('rv-post')).length === 0, 'the revocation to finish');
  const sent = await revocationRequests();
  expect(sent).toHaveLength(2);
  for (const r of sent) expect(r.form).toMatchObject({ client_id: oidc.clients.post.id, client_secret: oidc.clients.post.secret });
  expect(await oidc.active(tokens.access)).toBe(false);
});

test('DELETE /tokens/:user revokes every credential of the user upstream', async () => {
  const basic = await connect('rv-all', 'oidc');
  const post = await connect('rv-all', 'oidc-post');
  const res = await request(vault.app).delete('/tokens/rv-all').set('Authorization', writer()).expect(200);
  expect(res.body.deleted.sort()).toEqual(['oidc', 'oidc-post']);
  await waitFor(async () => (await pendingRevocations('rv-all')).length === 0, 'both revocations to finish');
  for (const token of [basic.access, basic.refresh, post.access, post.refresh]) expect(await oidc.active(token)).toBe(false);
});

test('a provider without revocationUrl: deleted locally at once, nothing sent, nothing queued', async () => {
  const tokens = await connect('rv-none', 'oidc-norevoke');
  await request(vault.app).delete('/tokens/rv-none/oidc-norevoke').set('Authorization', writer()).expect(204);
  expect(await pendingRevocations('rv-none')).toEqual([]);
  expect(await kekCount('rv-none')).toBe(0);
  expect(await revocationRequests()).toEqual([]);
  expect(await oidc.active(tokens.access)).toBe(true);
});

test('provider down (503, then a hung request past the timeout), then back: the revocation is retried in the background until it succeeds', async () => {
  await oidc.mode({ endpoint: 'revocation', mode: 'status', status: 503, times: 1 });
  const tokens = await connect('rv-down');
  await request(vault.app).delete('/tokens/rv-down/oidc').set('Authorization', writer()).expect(204);

  // Gone for callers at once, while the provider has not been told yet.
  await request(vault.app).get('/tokens/rv-down/oidc').set('Authorization', writer()).expect(404);
  await waitFor(async () => (await revocationRequests()).length === 1, 'the first attempt');
  expect(await pendingRevocations('rv-down')).toHaveLength(1);
  expect(await kekCount('rv-down')).toBe(1);
  const metrics = await request(vault.app).get('/metrics');
  expect(metrics.text).toMatch(/token_vault_revocations_pending [1-9]/);
  expect(await oidc.active(tokens.access)).toBe(true);

  // The retry (1 s later, by the scheduler) hangs until the client's timeout; the next one succeeds.
  await oidc.mode({ endpoint: 'revocation', mode: 'hang', times: 1 });
  await waitFor(async () => (await pendingRevocations('rv-down')).length === 0, 'the revocation to succeed', 20_000);

  const sent = await revocationRequests();
  expect(sent.map((r) => r.form.token_type_hint)).toEqual(['refresh_token', 'refresh_token', 'refresh_token', 'access_token']);
  expect(await oidc.active(tokens.access)).toBe(false);
  expect(await oidc.active(tokens.refresh)).toBe(false);
  expect(await kekCount('rv-down')).toBe(0);
  const after = await request(vault.app).get('/metrics');
  expect(after.text).toMatch(/token_vault_revocations_total\{provider="oidc",outcome="retry"\} [2-9]/);
  expect(after.text).toMatch(/token_vault_revocations_total\{provider="oidc",outcome="revoked"\} [1-9]/);
});

test('the provider refuses the request (400 invalid_request): no retries, the vault gives up, logs it and counts it', async () => {
  await oidc.mode({ endpoint: 'revocation', mode: 'status', status: 400, body: { error: 'invalid_request' } });
  await connect('rv-refused');
  await request(vault.app).delete('/tokens/rv-refused/oidc').set('Authorization', writer()).expect(204);
  await waitFor(async () => (await pendingRevocations('rv-refused')).length === 0, 'the revocation to be given up');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  expect(await revocationRequests()).toHaveLength(1);
  expect(await kekCount('rv-refused')).toBe(0);
  expect(vault.logs.audit()).toContainEqual(expect.objectContaining({ action: 'credential.revoke', user: 'rv-refused', outcome: 'failed', result: 'gave_up' }));
  expect(vault.logs.entries()).toContainEqual(expect.objectContaining({ level: 50, user: 'rv-refused', msg: expect.stringContaining('gave up revoking') }));
});

test('the replica that deleted a credential died before revoking it: another replica revokes it once the lease ends', async () => {
  const tokens = await connect('rv-orphaned');
  // What a replica leaves behind when it dies right after the delete: the queue entry, leased to it.
  const meta = (await vault.deps.store.meta('rv-orphaned', 'oidc'))!;
  await vault.deps.store.delete('rv-orphaned', 'oidc', { kind: 'exact', version: meta.version }, { revokeLeaseMs: 1000 });
  expect(await pendingRevocations('rv-orphaned')).toHaveLength(1);
  expect(await revocationRequests()).toEqual([]);

  // This vault's scheduler stands in for the surviving replica.
  await waitFor(async () => (await pendingRevocations('rv-orphaned')).length === 0, 'the other replica to revoke it');
  expect((await revocationRequests()).map((r) => r.form.token)).toEqual([tokens.refresh, tokens.access]);
  expect(await oidc.active(tokens.refresh)).toBe(false);
});

test('a DELETE while a refresh is at the provider: the credential stays deleted and the tokens the refresh obtained are revoked too', async () => {
  const tokens = await connect('rv-race');
  // The provider mints the new tokens before it gets to the DELETE's revocation request.
  await oidc.mode({ endpoint: 'token', mode: 'slow', delayMs: 800, times: 1 });
  await oidc.mode({ endpoint: 'revocation', mode: 'slow', delayMs: 1500, times: 1 });
  const refreshing = request(vault.app).post('/tokens/rv-race/oidc/refresh').set('Authorization', writer());
  const refreshed = refreshing.then((res) => res);
  await waitFor(async () => (await oidc.requests()).some((r) => r.path === '/token'), 'the refresh to reach the provider');
  await request(vault.app).delete('/tokens/rv-race/oidc').set('Authorization', writer()).expect(204);
  expect((await refreshed).status).toBe(404);
  await request(vault.app).get('/tokens/rv-race/oidc').set('Authorization', writer()).expect(404);

  // Both the deleted tokens and the ones the refresh minted meanwhile are revoked upstream.
  await waitFor(async () => (await revocationRequests()).length === 4 && (await pendingRevocations('rv-race')).length === 0, 'four revocations');
  const revoked = (await revocationRequests()).map((r) => r.form.token!);
  expect(revoked).toEqual(expect.arrayContaining([tokens.refresh, tokens.access]));
  const minted = revoked.filter((t) => t !== tokens.refresh && t !== tokens.access);
  expect(minted).toHaveLength(2);
  for (const token of minted) expect(await oidc.active(token)).toBe(false);
  expect(await kekCount('rv-race')).toBe(0);
  expect(vault.logs.text()).not.toContain(minted[0]);
});

test('a deleted credential waiting for its provider stays sealed in its shard; a key rotation rewraps it, and it is revoked under the new key', async () => {
  await oidc.mode({ endpoint: 'revocation', mode: 'status', status: 503 });
  const tokens = await connect('rv-rewrap');
  await request(vault.app).delete('/tokens/rv-rewrap/oidc').set('Authorization', writer()).expect(204);
  await waitFor(async () => (await revocationRequests()).length >= 1, 'the first attempt');
  const [member] = await pendingRevocations('rv-rewrap');
  const record = vault.deps.keys.revocation('rv-rewrap', 'oidc', parseRevocationMember(member!)!.version);
  expect(record).toContain(`{s${shardOf('rv-rewrap')}}`);
  expect(await inspect.hget(record, 'kek')).toBe('k1');
  const blob = (await inspect.hgetBuffer(record, 'blob'))!;
  for (const token of [tokens.access, tokens.refresh]) expect(blob.includes(Buffer.from(token))).toBe(false);

  // Rotate to k2 and rewrap: the waiting record moves to k2 with the credentials.
  writeKeyring('k2', ['k1', 'k2']);
  const admin = vault.auth(vault.keys.admin);
  await request(vault.app).post('/admin/keys/reload').set('Authorization', admin).expect(200);
  const job = (await request(vault.app).post('/admin/rewrap').set('Authorization', admin).expect(202)).body.job as { id: string };
  await waitFor(async () => (await request(vault.app).get(`/admin/rewrap/${job.id}`).set('Authorization', admin)).body.job.state === 'done', 'the rewrap');
  expect(await inspect.hget(record, 'kek')).toBe('k2');
  const keys = (await request(vault.app).get('/admin/keys').set('Authorization', admin)).body.keys as { id: string; records: number }[];
  expect(keys.find((k) => k.id === 'k1')?.records ?? 0).toBe(0);

  await oidc.mode({ endpoint: 'revocation', mode: 'normal' });
  await waitFor(async () => (await pendingRevocations('rv-rewrap')).length === 0, 'the revocation under k2', 20_000);
  expect(await oidc.active(tokens.refresh)).toBe(false);
});
