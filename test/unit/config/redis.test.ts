import { ConfigError, resolveConfig, type LoadedConfig } from '../../../src/config/load';
import { redisConnection } from '../../../src/deps';

/** The `redis:` section: one of url, cluster or sentinel, REDIS_URL, and what the vault connects with. */
type Raw = Record<string, unknown>;
type Env = Record<string, string>;

const dev = (raw: Raw, env: Env = {}): LoadedConfig => resolveConfig(raw, { env, mode: 'development', baseDir: '/nonexistent/token-vault-test' });

function issues(raw: Raw, env: Env = {}): string[] {
  try {
    dev(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

describe('redis.cluster', () => {
  test('takes seed node URLs, as a list or one secret reference holding several separated by commas', () => {
    const listed = dev({ redis: { cluster: ['redis://:pw@10.0.0.1:7000', 'redis://:pw@10.0.0.2:7000'] } });
    expect(redisConnection(listed.config.redis)).toEqual({ kind: 'cluster', urls: ['redis://:pw@10.0.0.1:7000', 'redis://:pw@10.0.0.2:7000'] });

    const fromEnv = dev({ redis: { cluster: { env: 'SEEDS' } } }, { SEEDS: 'rediss://u:p@a:7000, rediss://u:p@b:7000' });
    expect(fromEnv.config.redis.cluster?.[0]?.origin).toBe('env');
    expect(redisConnection(fromEnv.config.redis)).toEqual({ kind: 'cluster', urls: ['rediss://u:p@a:7000, rediss://u:p@b:7000'] });
  });

  test.each([
    [[], 'redis.cluster: give at least one seed node URL'],
    [['http://a:7000'], 'redis.cluster[0]: must be a redis:// or rediss:// URL'],
    [['redis://a:7000/2'], 'redis.cluster[0]: a Redis Cluster has only database 0'],
    [['redis://a:7000', 'rediss://b:7000'], 'redis.cluster[1]: use one scheme (redis:// or rediss://) for every seed node'],
    [['redis://:one@a:7000', 'redis://:two@b:7000'], 'redis.cluster[1]: every seed node must carry the same credentials (the cluster\'s nodes share them)'],
  ])('refuses %j naming the entry', (cluster, message) => {
    expect(issues({ redis: { cluster } })).toEqual([message]);
  });

  test('a bad URL inside a list held by one reference is named by its position, never quoted', () => {
    const found = issues({ redis: { cluster: { env: 'SEEDS' } } }, { SEEDS: 'redis://:s3cret@a:7000,not a url' });
    expect(found).toEqual(['redis.cluster[0]: URL 2 of 2: is not a URL (redis://[user:password@]host:port)']);
    expect(found.join()).not.toContain('s3cret');
  });
});

describe('redis.sentinel', () => {
  test('takes the sentinels, the master group name and secret references for both sets of credentials', () => {
    const loaded = dev(
      {
        redis: {
          sentinel: {
            sentinels: ['10.0.0.1:26379', '[::1]:26380', 'redis://sentinel-3', 'sentinel-4'],
            name: 'mymaster',
            password: { env: 'REDIS_PASSWORD' },
            username: 'vault',
            sentinelPassword: { env: 'SENTINEL_PASSWORD' },
          },
        },
      },
      { REDIS_PASSWORD: 'data-pw', SENTINEL_PASSWORD: 'sentinel-pw' },
    );
    expect(redisConnection(loaded.config.redis)).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '::1', port: 26380 },
        { host: 'sentinel-3', port: 26379 },
        { host: 'sentinel-4', port: 26379 },
      ],
      name: 'mymaster',
      username: 'vault',
      password: 'data-pw',
      sentinelUsername: undefined,
      sentinelPassword: 'sentinel-pw',
      tls: false,
    });
  });

  test('rediss:// sentinels mean TLS', () => {
    const loaded = dev({ redis: { sentinel: { sentinels: ['rediss://s1:26379', 'rediss://s2:26379'], name: 'm' } } });
    expect(loaded.config.redis.sentinel?.tls).toBe(true);
  });

  test.each([
    [{ name: 'm' }, 'redis.sentinel.sentinels: Invalid input: expected array, received undefined'],
    [{ sentinels: [], name: 'm' }, 'redis.sentinel.sentinels: give at least one sentinel'],
    [{ sentinels: ['a:26379'] }, 'redis.sentinel.name: Invalid input: expected string, received undefined'],
    [{ sentinels: ['a:99999'], name: 'm' }, 'redis.sentinel.sentinels[0]: has no valid port'],
    [{ sentinels: ['redis://:pw@a:26379'], name: 'm' }, 'redis.sentinel.sentinels[0]: must carry no credentials (give them as sentinelUsername / sentinelPassword)'],
    [{ sentinels: ['redis://a:1', 'rediss://b:1'], name: 'm' }, 'redis.sentinel.sentinels: use one scheme (redis:// or rediss://) for every sentinel'],
    [{ sentinels: ['rediss://a:1'], name: 'm', tls: false }, 'redis.sentinel.tls: rediss:// sentinels need TLS; remove tls: false'],
    [{ sentinels: ['a:1'], name: 'm', master: 'x' }, 'redis.sentinel: Unrecognized key: "master"'],
  ])('refuses %j naming the field', (sentinel, message) => {
    expect(issues({ redis: { sentinel } })).toEqual([message]);
  });
});

describe('one place for Redis', () => {
  test('url, cluster and sentinel exclude each other', () => {
    expect(issues({ redis: { url: 'redis://a', cluster: ['redis://b:7000'] } })).toEqual(['redis.cluster: give only one of url, cluster or sentinel (found url and cluster)']);
    expect(issues({ redis: { cluster: ['redis://b:7000'], sentinel: { sentinels: ['c:26379'], name: 'm' } } })).toEqual([
      'redis.sentinel: give only one of url, cluster or sentinel (found cluster and sentinel)',
    ]);
  });

  test('REDIS_URL replaces redis.url, and the default when none is configured', () => {
    expect(redisConnection(dev({ redis: { url: 'redis://file:6379' } }, { REDIS_URL: 'redis://env:6380' }).config.redis)).toEqual({ kind: 'url', url: 'redis://env:6380' });
    expect(redisConnection(dev({}).config.redis)).toEqual({ kind: 'url', url: 'redis://127.0.0.1:6379' });
  });

  test.each(['cluster', 'sentinel'])('REDIS_URL next to redis.%s is refused, not silently ignored', (field) => {
    const redis = field === 'cluster' ? { cluster: ['redis://b:7000'] } : { sentinel: { sentinels: ['c:26379'], name: 'm' } };
    const found = issues({ redis }, { REDIS_URL: 'redis://:pw@env:6379' });
    expect(found).toEqual([expect.stringMatching(new RegExp(`^REDIS_URL: is set, but the configuration uses redis\\.${field}, and REDIS_URL replaces redis\\.url only; unset REDIS_URL`))]);
    expect(found.join()).not.toContain('pw@');
  });

  test('dev mode Redis (its own redis-server) overrides the configured one', () => {
    expect(redisConnection(dev({ redis: { url: 'redis://file:6379' } }).config.redis, 'redis://127.0.0.1:7777')).toEqual({ kind: 'url', url: 'redis://127.0.0.1:7777' });
  });

  test('redis.waitReplicas is accepted with a cluster: WAIT goes to the master of the written key', () => {
    expect(dev({ redis: { cluster: ['redis://b:7000'], waitReplicas: 1 } }).config.redis.waitReplicas).toBe(1);
  });
});
