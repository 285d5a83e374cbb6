import type { Redis } from 'ioredis';
import type { DestinationStream, Logger } from 'pino';
import { CallerRegistry } from './auth/callers';
import { FailureLimiter } from './auth/failure-limiter';
import { systemClock, type Clock } from './clock';
import type { LoadedConfig } from './config/load';
import type { ProviderConfig } from './config/schema';
import { CredentialService } from './credentials/credential-service';
import { Envelope } from './crypto/envelope';
import { LocalKeyWrapper } from './crypto/key-wrapper';
import type { Keyring } from './crypto/keyring';
import { createAuditLog, createLogger, type AuditLog } from './observability/logger';
import { Metrics } from './observability/metrics';
import { CredentialStore } from './store/credential-store';
import { Keys } from './store/keys';
import { connectRedis, createRedis } from './store/redis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export interface Deps {
  loaded: LoadedConfig;
  config: LoadedConfig['config'];
  providers: ReadonlyMap<string, ProviderConfig>;
  logger: Logger;
  audit: AuditLog;
  metrics: Metrics;
  clock: Clock;
  redis: Redis;
  keys: Keys;
  store: CredentialStore;
  keyring: Keyring | undefined;
  credentials: CredentialService;
  callers: CallerRegistry;
  authFailures: FailureLimiter;
  /** Set when shutdown begins: readiness fails and responses ask clients to close. */
  state: { shuttingDown: boolean };
  close(): Promise<void>;
}

export interface DepsOptions {
  /** Where logs and audit entries go (default: stdout). */
  logDestination?: DestinationStream;
  /** A logger already made on that destination (main.ts logs before the deps exist). */
  logger?: Logger;
  clock?: Clock;
  random?: () => number;
  /** Overrides the configured Redis URL (dev mode, when it started its own redis-server). */
  redisUrl?: string;
  /** Overrides the configured key prefix (dev mode: derived from the dev keyring). */
  keyPrefix?: string;
  /** Overrides the loaded keyring (dev mode: the generated one). */
  keyring?: Keyring;
}

/** The one place where objects are constructed and wired. Connects to Redis before returning. */
export async function createDeps(loaded: LoadedConfig, options: DepsOptions = {}): Promise<Deps> {
  const { config } = loaded;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(loaded.logLevel, options.logDestination);
  const audit = createAuditLog(options.logDestination);
  const metrics = new Metrics();
  const keyring = options.keyring ?? loaded.keyring;

  const redis = createRedis(options.redisUrl ?? config.redis.url?.reveal() ?? DEFAULT_REDIS_URL);
  await connectRedis(redis);
  const keys = new Keys(options.keyPrefix ?? config.redis.keyPrefix);
  const store = new CredentialStore(redis, keys);
  const envelope = new Envelope(new LocalKeyWrapper(keyring));

  const credentials = new CredentialService({
    store,
    envelope,
    clock,
    audit,
    metrics,
    logger,
    schedule: config.refresh,
    ...(options.random ? { random: options.random } : {}),
  });

  return {
    loaded,
    config,
    providers: new Map(Object.entries(config.providers)),
    logger,
    audit,
    metrics,
    clock,
    redis,
    keys,
    store,
    keyring,
    credentials,
    callers: new CallerRegistry(config.callers),
    authFailures: new FailureLimiter({ maxFailures: 20, windowMs: 60_000, now: () => clock.now() }),
    state: { shuttingDown: false },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
