import { Keys, SHARD_COUNT, shardOf } from '../../../src/store/keys';
import { parseHostPort, parseRedisUrl, splitUrlList } from '../../../src/store/redis-url';
import { hashSlot } from '../../../src/store/topology';

describe('hashSlot', () => {
  test('matches the values of the Redis Cluster specification and of CLUSTER KEYSLOT', () => {
    // From the specification's examples and `redis-cli cluster keyslot`.
    expect(hashSlot('123456789')).toBe(12739);
    expect(hashSlot('foo')).toBe(12182);
    expect(hashSlot('bar')).toBe(5061);
    expect(hashSlot('{user1000}.following')).toBe(hashSlot('{user1000}.followers'));
    expect(hashSlot('{user1000}.following')).toBe(hashSlot('user1000'));
    // An empty tag does not count: the whole key is hashed.
    expect(hashSlot('foo{}{bar}')).not.toBe(hashSlot('bar'));
    expect(hashSlot('foo{{bar}}zap')).toBe(hashSlot('{bar'));
  });

  test("every key of a user's shard lands in one slot; the 1,024 shards spread over the slot space", () => {
    const keys = new Keys('tv:');
    const user = 'u42@example.com';
    const slot = hashSlot(keys.credential(user, 'github'));
    for (const key of [keys.userIndex(user), keys.due(user), keys.kekCounts(user), keys.versions(user), keys.outbox(user), keys.leases(user), keys.revocation(user, 'github', 7)]) {
      expect(hashSlot(key)).toBe(slot);
    }
    expect(hashSlot(keys.shardKey(shardOf(user), 'states'))).toBe(slot);
    const slots = new Set(Array.from({ length: SHARD_COUNT }, (_, shard) => hashSlot(keys.shardKey(shard, 'due'))));
    // Three equal masters own 5,461 slots each: no third of the slot space is left without shards.
    for (const [from, to] of [[0, 5460], [5461, 10922], [10923, 16383]] as const) {
      expect([...slots].filter((s) => s >= from && s <= to).length).toBeGreaterThan(250);
    }
  });
});

describe('Redis URLs', () => {
  test('parse into address, credentials, TLS and database', () => {
    expect(parseRedisUrl('rediss://vault:p%40ss@[::1]:7001/0')).toEqual({ host: '::1', port: 7001, username: 'vault', password: 'p@ss', tls: true, db: 0 });
    expect(parseRedisUrl('redis://cache')).toEqual({ host: 'cache', port: 6379, username: undefined, password: undefined, tls: false, db: 0 });
    expect(parseRedisUrl('redis://cache:6379/3')).toMatchObject({ db: 3 });
  });

  test('problems never repeat the URL', () => {
    for (const text of ['redis://:secret@host:6379/x', 'http://:secret@host', 'redis://:secret@host?x=1']) {
      const parsed = parseRedisUrl(text);
      expect('problem' in parsed && !parsed.problem.includes('secret')).toBe(true);
    }
  });

  test('a list in one value splits on commas', () => {
    expect(splitUrlList(' redis://a:1 ,redis://b:2,, ')).toEqual(['redis://a:1', 'redis://b:2']);
  });

  test('sentinel addresses: host:port, a bare host (port 26379) or a URL without credentials', () => {
    expect(parseHostPort('10.0.0.1:26380', 26379)).toEqual({ host: '10.0.0.1', port: 26380, tls: undefined });
    expect(parseHostPort('sentinel', 26379)).toEqual({ host: 'sentinel', port: 26379, tls: undefined });
    expect(parseHostPort('rediss://sentinel', 26379)).toEqual({ host: 'sentinel', port: 26379, tls: true });
    expect(parseHostPort('a b', 26379)).toEqual({ problem: 'must be host:port or a redis:// URL' });
  });
});
