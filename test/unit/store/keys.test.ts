import { crc32 as zlibCrc32 } from 'node:zlib';
import { dueMember, Keys, parseDueMember, parseRevocationMember, revocationMember, SHARD_COUNT, shardOf } from '../../../src/store/keys';

/** CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), table-driven: independent of node:zlib. */
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of Buffer.from(text, 'utf8')) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The hash tag Redis Cluster hashes (cluster spec, "Hash tags"): first '{' to the next '}', if non-empty. */
function clusterHashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

const USERS = ['u42', 'alice@example.com', 'tenant:7:user:42', 'a|b', 'user{with}braces', '}{', 'Ünïcödé-用户', ''];

describe('shard function', () => {
  test('the independent CRC-32 gives the standard check value for "123456789"', () => {
    expect(crc32('123456789')).toBe(0xcbf43926);
  });

  test('pinned shards: changing the shard function is a data migration, so these must never change', () => {
    // 0xcbf43926 mod 1024 = 0x126
    expect(shardOf('123456789')).toBe(294);
    // crc32("u42") = 3733377502, crc32("alice@example.com") = 2583554601
    expect(crc32('u42')).toBe(3733377502);
    expect(shardOf('u42')).toBe(478);
    expect(crc32('alice@example.com')).toBe(2583554601);
    expect(shardOf('alice@example.com')).toBe(553);
  });

  test('shard = crc32(user) mod 1024 for many users, ASCII and not', () => {
    expect(SHARD_COUNT).toBe(1024);
    const users = [...USERS];
    for (let i = 0; i < 500; i++) users.push(`user-${i}`, `${i}:${String.fromCodePoint(0x4e00 + i)}`);
    for (const user of users) {
      const shard = shardOf(user);
      expect(shard).toBe(crc32(user) % 1024);
      expect(shard).toBe(zlibCrc32(user) % 1024);
      expect(shard).toBeGreaterThanOrEqual(0);
      expect(shard).toBeLessThan(1024);
    }
  });
});

describe('key names', () => {
  test('every key about one user carries that user\'s {s<n>} hash tag', () => {
    const keys = new Keys('tv:');
    for (const user of USERS) {
      const tag = `s${crc32(user) % 1024}`;
      const names = [
        keys.credential(user, 'github'),
        keys.credential(user, 'google'),
        keys.userIndex(user),
        keys.due(user),
        keys.kekCounts(user),
        keys.versions(user),
        keys.outbox(user),
        keys.revocations(user),
        keys.revocation(user, 'github', 12),
      ];
      for (const name of names) {
        expect(name.startsWith(`tv:{${tag}}:`)).toBe(true);
        expect(clusterHashTag(name)).toBe(tag);
      }
    }
  });

  test('key names follow the documented schema', () => {
    const keys = new Keys('tv:');
    const n = crc32('u42') % 1024;
    expect(keys.credential('u42', 'github')).toBe(`tv:{s${n}}:cred:u42:github`);
    expect(keys.userIndex('u42')).toBe(`tv:{s${n}}:user:u42`);
    expect(keys.due('u42')).toBe(`tv:{s${n}}:due`);
    expect(keys.kekCounts('u42')).toBe(`tv:{s${n}}:kek`);
    expect(keys.versions('u42')).toBe(`tv:{s${n}}:seq`);
    expect(keys.outbox('u42')).toBe(`tv:{s${n}}:outbox`);
    expect(keys.revocations('u42')).toBe(`tv:{s${n}}:revocations`);
    expect(keys.revocation('u42', 'github', 12)).toBe(`tv:{s${n}}:revoke:12:u42:github`);
    expect(keys.accountIndex('github', '583231')).toBe(`tv:{a${crc32('github:583231') % 1024}}:acct:github:583231`);
    expect(keys.delivery('dlv_x')).toBe('tv:{webhooks}:delivery:dlv_x');
    expect(keys.globalOutbox('keys')).toBe('tv:{keys}:outbox');
    expect(keys.allOutboxes()).toHaveLength(1026);
  });

  test('sealed records are credentials and deleted credentials waiting for revocation; users with ":" parse back', () => {
    const keys = new Keys('tv:');
    for (const user of ['u42', 'a:b:c', 'x|1']) {
      expect(keys.parseSealedKey(keys.credential(user, 'github'))).toEqual({ user, provider: 'github' });
      expect(keys.parseSealedKey(keys.revocation(user, 'github', 7))).toEqual({ user, provider: 'github' });
      expect(parseRevocationMember(revocationMember(user, 'github', 7))).toEqual({ user, provider: 'github', version: 7 });
    }
    for (const other of [keys.due('u42'), keys.kekCounts('u42'), keys.outbox('u42'), keys.revocations('u42'), 'other:{s1}:cred:u:p']) {
      expect(keys.parseSealedKey(other)).toBeNull();
    }
    expect(parseRevocationMember('x:u42:github')).toBeNull();
  });

  test('the per-shard keys by number are the same keys a user of that shard uses', () => {
    const keys = new Keys('dev:k1:');
    for (const user of USERS) {
      const shard = shardOf(user);
      expect(keys.shardKey(shard, 'due')).toBe(keys.due(user));
      expect(keys.shardKey(shard, 'kek')).toBe(keys.kekCounts(user));
      expect(keys.shardKey(shard, 'outbox')).toBe(keys.outbox(user));
      expect(keys.shardKey(shard, 'revocations')).toBe(keys.revocations(user));
    }
  });

  test('the prefix starts every key and an empty prefix is allowed', () => {
    const keys = new Keys('');
    expect(keys.due('u42')).toBe(`{s${shardOf('u42')}}:due`);
    expect(clusterHashTag(keys.credential('u42', 'github'))).toBe(`s${shardOf('u42')}`);
  });
});

describe('due members', () => {
  test('a member is "<user>:<provider>" and parses back', () => {
    expect(dueMember('u42', 'github')).toBe('u42:github');
    expect(parseDueMember('u42:github')).toEqual({ user: 'u42', provider: 'github' });
  });

  test('users containing ":" split on the last ":" (providers contain none)', () => {
    expect(parseDueMember('tenant:7:user:42:github')).toEqual({ user: 'tenant:7:user:42', provider: 'github' });
    expect(parseDueMember('u42::google')).toEqual({ user: 'u42:', provider: 'google' });
    expect(parseDueMember(':github')).toEqual({ user: '', provider: 'github' });
  });

  test.each(USERS)('dueMember and parseDueMember round-trip for user %j', (user) => {
    expect(parseDueMember(dueMember(user, 'twitter-signonly'))).toEqual({ user, provider: 'twitter-signonly' });
  });
});
