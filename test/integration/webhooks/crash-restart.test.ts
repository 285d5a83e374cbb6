import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import { stringify } from 'yaml';
import { Keys } from '../../../src/store/keys';
import { freePort, RedisServer } from '../../helpers/redis-server';
import { buildVault, http, VaultProcess, vaultEnv, type BuiltVault } from '../../helpers/vault-process';
import { WebhookReceiver } from '../../helpers/webhook-receiver';

/**
 * Outbound webhooks survive the vault: a built vault process (NODE_ENV=production) is killed
 * with SIGKILL right after a DELETE answered 204, while its subscriber is down; a new process on
 * the same Redis delivers the token.revoked event once the subscriber is back. Whether the dead
 * process had moved the event out of its outbox, tried it, or neither, the outcome is the same.
 */

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const apiKey = `tv_crash_${randomBytes(16).toString('hex')}`;
const auth = { authorization: `Bearer ${apiKey}` };
const keys = new Keys('tv:');

let built: BuiltVault;
let redis: RedisServer;
let inspect: Redis;
let work: string;
let receiver: WebhookReceiver | undefined;
const spawned: VaultProcess[] = [];

beforeAll(async () => {
  [built, redis] = await Promise.all([buildVault(), RedisServer.start()]);
  inspect = redis.client();
  work = mkdtempSync(join(tmpdir(), 'tv-crash-'));
  writeFileSync(join(work, 'keyring.json'), JSON.stringify({ active: 'k1', keys: { k1: randomBytes(32).toString('base64') } }), { mode: 0o600 });
}, 60_000);

afterAll(async () => {
  await Promise.all(spawned.map((vault) => vault.kill()));
  await receiver?.stop();
  inspect?.disconnect();
  await redis?.stop();
  built?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function startVault(hookPort: number): Promise<{ vault: VaultProcess; port: number }> {
  const config = join(work, 'config.yaml');
  writeFileSync(
    config,
    stringify({
      redis: { url: { env: 'REDIS_URL' } },
      keyring: { file: join(work, 'keyring.json') },
      callers: [{ name: 'backend', key: { env: 'BACKEND_API_KEY' }, scopes: ['tokens:read', 'tokens:write', 'admin'], providers: ['*'] }],
      providers: { github: { type: 'oauth2', clientId: 'gh', clientSecret: { env: 'GH_SECRET' }, tokenUrl: 'http://127.0.0.1:1/token' } },
      webhooks: {
        subscribers: [{ name: 'hooks', url: `http://127.0.0.1:${hookPort}/hooks`, secret: { env: 'WEBHOOK_SECRET' }, events: ['token.*'] }],
        // Attempts every 2 s for a while: the subscriber is down while the first vault runs.
        retrySchedule: [0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
        timeoutSeconds: 2,
      },
    }),
  );
  const port = await freePort();
  const vault = VaultProcess.startBuilt(built, {
    cwd: work,
    env: vaultEnv({
      NODE_ENV: 'production',
      TOKEN_VAULT_CONFIG: config,
      PORT: String(port),
      REDIS_URL: redis.url,
      BACKEND_API_KEY: apiKey,
      GH_SECRET: 'gh-client-secret',
      WEBHOOK_SECRET: SECRET,
    }),
  });
  spawned.push(vault);
  await vault.waitForListening();
  return { vault, port };
}

test('SIGKILL right after a DELETE, subscriber down: a restarted vault delivers the token.revoked event, signed, with one webhook-id', async () => {
  const hookPort = await freePort();
  const first = await startVault(hookPort);
  const put = await http(first.port, 'PUT', '/tokens/crash-user/github', { headers: auth, body: { type: 'oauth2', access_token: 'at-crash-value-1', refresh_token: 'rt-crash-value-1', expires_in: 3600 } });
  expect(put.status).toBe(201);
  const deleted = await http(first.port, 'DELETE', '/tokens/crash-user/github', { headers: auth });
  expect(deleted.status).toBe(204);
  first.vault.signal('SIGKILL');
  await first.vault.waitForExit();

  // The event is somewhere durable: still in the outbox, or already a pending delivery.
  const inOutbox = await inspect.llen(keys.outbox('crash-user'));
  const pending = await inspect.zcard(keys.deliveries('pending'));
  expect(inOutbox + pending).toBe(1);

  receiver = await WebhookReceiver.start(hookPort);
  const second = await startVault(hookPort);
  const [hook] = await receiver.waitFor(1, 20_000);
  const payload = new Webhook(SECRET).verify(hook!.body, hook!.headers as Record<string, string>) as { type: string; data: Record<string, unknown> };
  expect(payload).toMatchObject({ type: 'token.revoked', data: { user: 'crash-user', provider: 'github', reason: 'deleted', by: 'backend' } });
  expect(hook!.body).not.toContain('crash-value');

  const delivered = await http(second.port, 'GET', '/admin/webhooks/deliveries?status=delivered', { headers: auth });
  const deliveries = (delivered.body as { deliveries: { event_id: string; status: string }[] }).deliveries;
  expect(deliveries).toEqual([expect.objectContaining({ status: 'delivered', event_id: hook!.headers['webhook-id'] })]);
  // At least once: a second receipt could only be the same event, never a new one.
  expect(new Set(receiver.received.map((r) => r.headers['webhook-id']))).toEqual(new Set([hook!.headers['webhook-id']]));
  expect(await inspect.llen(keys.outbox('crash-user'))).toBe(0);
});
