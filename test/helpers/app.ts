import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Express } from 'express';
import { buildHandler } from '../../src/app';
import { resolveConfig, type LogLevel, type Mode } from '../../src/config/load';
import { Keyring } from '../../src/crypto/keyring';
import { createDeps, type Deps, type DepsOptions } from '../../src/deps';
import { checkedAgainstOpenApi } from './openapi-contract';
import type { RedisTarget } from './redis-server';

/**
 * A clock tests move by hand: fixed by default, or following real time (for tests where Redis
 * TIME, leases and the scheduler are involved) with advance() still moving it forward.
 */
export class TestClock {
  private offset = 0;

  constructor(private readonly base: () => number = () => Date.parse('2026-11-23T12:00:00.000Z')) {}

  static realTime(): TestClock {
    return new TestClock(() => Date.now());
  }

  now(): number {
    return this.base() + this.offset;
  }

  advance(ms: number): void {
    this.offset += ms;
  }
}

/** Everything the vault logged (audit entries included), at the level the test chose. */
export class LogCapture extends Writable {
  private chunks: string[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk.toString('utf8'));
    done();
  }
  text(): string {
    return this.chunks.join('');
  }
  entries(): Record<string, unknown>[] {
    return this.text()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
  audit(): Record<string, unknown>[] {
    return this.entries().filter((entry) => entry.audit === true);
  }
}

/** Random API keys for the standard callers of testConfig(). */
export function callerKeys() {
  const key = (name: string) => `tv_test_${name}_${randomBytes(16).toString('hex')}`;
  return { admin: key('admin'), reader: key('reader'), writer: key('writer'), githubOnly: key('github'), noScopes: key('admin-only') };
}
export type CallerKeys = ReturnType<typeof callerKeys>;

export const TEST_PROVIDERS = {
  github: {
    type: 'oauth2',
    clientId: 'gh-client',
    clientSecret: 'gh-client-secret-value',
    clientAuth: 'client_secret_post',
    tokenUrl: 'http://127.0.0.1:1/github/token',
  },
  google: {
    type: 'oauth2',
    clientId: 'google-client',
    clientSecret: 'google-client-secret-value',
    tokenUrl: 'http://127.0.0.1:1/google/token',
  },
  twitter: { type: 'oauth1', consumerKey: 'tw-consumer', consumerSecret: 'tw-consumer-secret-value' },
  'twitter-signonly': { type: 'oauth1', consumerKey: 'tw2-consumer', consumerSecret: 'tw2-consumer-secret-value', signOnly: true },
};

/**
 * The standard test configuration: providers github, google (oauth2), twitter and
 * twitter-signonly (oauth1), and callers:
 *   admin       every scope, every provider
 *   reader      tokens:read, every provider
 *   writer      tokens:read + tokens:write, every provider
 *   github-only tokens:read + tokens:write, github only
 *   admin-only  admin scope only (no token scopes)
 */
export function testConfig(keys: CallerKeys, keyringJson: string): Record<string, unknown> {
  return {
    keyring: JSON.parse(keyringJson) as unknown,
    callers: [
      { name: 'admin', key: keys.admin, scopes: ['tokens:read', 'tokens:write', 'tokens:sign', 'connect', 'admin'], providers: ['*'] },
      { name: 'reader', key: keys.reader, scopes: ['tokens:read'], providers: ['*'] },
      { name: 'writer', key: keys.writer, scopes: ['tokens:read', 'tokens:write'], providers: ['*'] },
      { name: 'github-only', key: keys.githubOnly, scopes: ['tokens:read', 'tokens:write'], providers: ['github'] },
      { name: 'admin-only', key: keys.noScopes, scopes: ['admin'], providers: ['*'] },
    ],
    providers: structuredClone(TEST_PROVIDERS),
  };
}

export interface TestVault {
  app: Express;
  deps: Deps;
  keys: CallerKeys;
  keyringJson: string;
  logs: LogCapture;
  clock: TestClock;
  /** `Authorization` header value for a caller's key. */
  auth(key: string): string;
  close(): Promise<void>;
}

export interface TestVaultOptions {
  /** A RedisServer, RedisCluster or SentinelGroup: the vault is pointed at it by its config(). */
  redis: RedisTarget;
  /** Replaces the standard configuration (the keyring and caller keys are still generated). */
  config?: (standard: Record<string, unknown>) => Record<string, unknown>;
  logLevel?: LogLevel;
  mode?: Mode;
  clock?: TestClock;
  /** Share caller keys and keyring with another vault (a second replica). */
  keys?: CallerKeys;
  keyringJson?: string;
  keyPrefix?: string;
  /** Options passed on to createDeps (provider HTTP client, scheduler poll interval, ...). */
  deps?: Pick<DepsOptions, 'fetch' | 'pollMs' | 'waitForOtherMs' | 'outboxSweepMs'>;
  /** Start the refresh scheduler (off by default, so API tests control every provider call). */
  scheduler?: boolean;
  /** Start the device-flow poller (off by default; tests may also call deps.devicePoller.tick()). */
  devicePoller?: boolean;
  /** Start the outbox relay and the webhook dispatcher (off by default). */
  webhooks?: boolean;
}

/** A vault wired exactly as main.ts wires it, on a real Redis, logging into memory. */
export async function startVault(options: TestVaultOptions): Promise<TestVault> {
  const keys = options.keys ?? callerKeys();
  const keyringJson = options.keyringJson ?? Keyring.generateJson('k1');
  const standard = testConfig(keys, keyringJson);
  const raw = options.config ? options.config(standard) : standard;
  // The target says where Redis is (url, cluster or sentinel); the test's config keeps the rest.
  const { url: _url, cluster: _cluster, sentinel: _sentinel, ...redisSettings } = (raw.redis ?? {}) as Record<string, unknown>;
  raw.redis = { ...redisSettings, ...options.redis.config(), ...(options.keyPrefix ? { keyPrefix: options.keyPrefix } : {}) };
  const loaded = resolveConfig(raw, {
    env: { LOG_LEVEL: options.logLevel ?? 'info', ...(options.mode === 'production' ? { NODE_ENV: 'production' } : {}) },
    mode: options.mode ?? 'development',
    baseDir: process.cwd(),
  });
  const logs = new LogCapture();
  const clock = options.clock ?? new TestClock();
  const deps = await createDeps(loaded, { logDestination: logs, clock, ...options.deps });
  await deps.keyAdmin.start();
  if (options.scheduler) deps.scheduler.start();
  if (options.devicePoller) deps.devicePoller.start();
  if (options.webhooks) {
    deps.relay.start();
    deps.dispatcher.start();
  }
  return {
    // Every response is checked against openapi.yaml (test/helpers/openapi-setup.ts fails the test).
    app: checkedAgainstOpenApi(buildHandler(deps)),
    deps,
    keys,
    keyringJson,
    logs,
    clock,
    auth: (key) => `Bearer ${key}`,
    close: () => deps.close(),
  };
}
