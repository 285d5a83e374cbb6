/**
 * Redis memory per stored credential, measured on a fresh redis-server: N credentials are
 * written through the real store (sealed, indexed, scheduled), and used_memory before and after
 * is divided by N. MEMORY USAGE of one record is shown beside it.
 *
 *   npm run bench -- [count]
 */
import { randomBytes } from 'node:crypto';
import { Keyring } from '../src/crypto/keyring';
import { Envelope } from '../src/crypto/envelope';
import { LocalKeyWrapper } from '../src/crypto/key-wrapper';
import { KeyringHolder } from '../src/crypto/keyring-holder';
import { encodeCredential, type OAuth2Credential } from '../src/credentials/credential';
import { CredentialStore } from '../src/store/credential-store';
import { Keys } from '../src/store/keys';
import { connectRedis, createRedis } from '../src/store/redis';
import { Secret } from '../src/secret';
import { RedisServer } from '../test/helpers/redis-server';

const count = Number(process.argv[2] ?? 20_000);

const shapes: Record<string, () => OAuth2Credential> = {
  // GitHub-style opaque tokens: 40-character access token, 80-character refresh token.
  'opaque (GitHub-like)': () => oauth2(`ghu_${hex(18)}`, `ghr_${hex(38)}`, null, 'repo'),
  // Google-style: ~220-character access token, ~100-character refresh token, ~1 KB id_token.
  'with id_token (Google-like)': () => oauth2(`ya29.${hex(108)}`, `1//${hex(49)}`, `eyJ${hex(500)}`, 'openid email profile'),
};

function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

function oauth2(access: string, refresh: string, idToken: string | null, scope: string): OAuth2Credential {
  const now = Date.now();
  return {
    type: 'oauth2',
    accessToken: new Secret(access),
    refreshToken: new Secret(refresh),
    idToken: idToken ? new Secret(idToken) : null,
    tokenType: 'Bearer',
    scope,
    expiresAt: now + 3600_000,
    refreshExpiresAt: null,
    issuedAt: now,
    accountId: '12345678',
    metadata: null,
  };
}

async function main(): Promise<void> {
  const server = await RedisServer.start(['--appendonly', 'no']);
  const redis = createRedis(server.url);
  await connectRedis(redis);
  const envelope = new Envelope(new LocalKeyWrapper(new KeyringHolder(Keyring.parse(Keyring.generateJson('k1')))));
  const rows: string[][] = [['credential shape', 'plaintext B', 'sealed B', 'MEMORY USAGE of record B', 'used_memory per credential B']];
  try {
    for (const [name, make] of Object.entries(shapes)) {
      await redis.flushall();
      const store = new CredentialStore(redis, new Keys(`tv:${name.length}:`));
      const before = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
      let plaintext = 0;
      let sealed = 0;
      for (let i = 0; i < count; i += 500) {
        await Promise.all(
          Array.from({ length: Math.min(500, count - i) }, async (_, j) => {
            const credential = make();
            const user = `user-${i + j}`;
            const clear = encodeCredential(credential);
            const blob = await envelope.seal(clear, { user, provider: 'github' });
            plaintext = clear.length;
            sealed = blob.length;
            await store.put({
              user,
              provider: 'github',
              type: 'oauth2',
              state: 'active',
              kekId: 'k1',
              blob,
              expiresAt: credential.expiresAt,
              refreshAt: credential.issuedAt + 3_300_000,
              scope: credential.scope,
              accountId: credential.accountId,
              now: Date.now(),
            });
          }),
        );
      }
      const after = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
      const sample = (await redis.keys(`tv:${name.length}:*:cred:user-0:github`))[0] as string;
      const usage = Number(await redis.memory('USAGE', sample));
      rows.push([name, String(plaintext), String(sealed), String(usage), ((after - before) / count).toFixed(0)]);
    }
  } finally {
    await redis.quit();
    await server.stop();
  }
  console.log(`Redis bytes per credential (${count} credentials per shape, a fresh redis-server on loopback)\n`);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join('  '));
}

void main();
