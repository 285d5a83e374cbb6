/**
 * Redis memory per stored credential, on a fresh redis-server: N credentials per shape are
 * written through the real store (sealed, indexed, scheduled), and used_memory after minus
 * before is divided by N. MEMORY USAGE of one record hash (all fields counted) is shown beside
 * it, with its encoding.
 */
import { Envelope } from '../src/crypto/envelope';
import { LocalKeyWrapper } from '../src/crypto/key-wrapper';
import { Keyring } from '../src/crypto/keyring';
import { KeyringHolder } from '../src/crypto/keyring-holder';
import { encodeCredential, type OAuth2Credential } from '../src/credentials/credential';
import { CredentialStore } from '../src/store/credential-store';
import { Keys } from '../src/store/keys';
import { connectRedis, createRedis } from '../src/store/redis';
import { githubLike, googleLike } from './lib/credentials';
import { figure, type Figure, type SuiteResult } from './lib/figures';
import type { BenchOptions } from './lib/options';
import { startRedis, usedMemory, VOLATILE_REDIS } from './lib/redis';
import { progress, runSuiteMain } from './lib/suite';

const SUITE = 'redis-bytes';
/**
 * Redis keeps a hash as a compact listpack only while every value is at most
 * hash-max-listpack-value bytes (default 64): a sealed blob is longer, so by default every record
 * is a hashtable. Measured again with the limit raised above the blob's size.
 */
const LISTPACK_VALUE_LIMIT = '2048';

const shapes: { id: string; name: string; make: () => OAuth2Credential }[] = [
  { id: 'opaque', name: 'opaque tokens (GitHub-like)', make: () => githubLike() },
  { id: 'id_token', name: '1 KB id_token (Google-like)', make: () => googleLike() },
];

export async function run(options: BenchOptions): Promise<SuiteResult> {
  const count = options.bytesCount;
  const redis = await startRedis(VOLATILE_REDIS);
  const envelope = new Envelope(new LocalKeyWrapper(new KeyringHolder(Keyring.parse(Keyring.generateJson('k1')))));
  const figures: Figure[] = [];
  const encodings: Record<string, string> = {};
  // The vault's own client: the store's Lua scripts are defined on it.
  const client = createRedis(redis.url);
  try {
    await connectRedis(client);
    const defaultValueLimit = String((await redis.client.config('GET', 'hash-max-listpack-value'))[1] ?? '64');
    for (const shape of shapes) {
      for (const limit of [defaultValueLimit, LISTPACK_VALUE_LIMIT]) {
        const listpack = limit === LISTPACK_VALUE_LIMIT;
        const label = listpack ? `${shape.name}, listpack` : shape.name;
        progress(SUITE, `${count} credentials, ${label}`);
        await redis.client.config('SET', 'hash-max-listpack-value', limit);
        await redis.client.flushall();
        const keys = new Keys(`tv:${shape.id}:`);
        const store = new CredentialStore(client, keys);
        const before = await usedMemory(redis.client);
        let plaintext = 0;
        let sealed = 0;
        for (let i = 0; i < count; i += 500) {
          await Promise.all(
            Array.from({ length: Math.min(500, count - i) }, async (_, j) => {
              const credential = shape.make();
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
        const after = await usedMemory(redis.client);
        const record = keys.credential('user-0', 'github');
        const usage = Number(await redis.client.memory('USAGE', record, 'SAMPLES', 0));
        encodings[label] = String(await redis.client.object('ENCODING', record));
        const id = `redis_bytes.${shape.id}${listpack ? '.listpack' : ''}`;
        if (!listpack) {
          figures.push(figure(`${id}.plaintext`, `${shape.name}: plaintext`, plaintext, 'B'), figure(`${id}.sealed`, `${shape.name}: sealed`, sealed, 'B'));
        }
        figures.push(
          figure(`${id}.record`, `${label}: record hash, MEMORY USAGE (${encodings[label]})`, usage, 'B'),
          figure(`${id}.per_credential`, `${label}: used_memory per credential`, (after - before) / count, 'B'),
        );
      }
    }
    await redis.client.config('SET', 'hash-max-listpack-value', defaultValueLimit);
  } finally {
    client.disconnect();
    await redis.stop();
  }
  return {
    suite: SUITE,
    title: `Redis memory per credential, ${count.toLocaleString('en-US')} per shape, written through the store; "listpack": hash-max-listpack-value ${LISTPACK_VALUE_LIMIT} instead of the default`,
    figures,
    details: { encodings },
  };
}

if (require.main === module) runSuiteMain(run);
