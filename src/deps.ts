import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { DestinationStream, Logger } from 'pino';
import { CallerRegistry } from './auth/callers';
import { FailureLimiter } from './auth/failure-limiter';
import { systemClock, type Clock } from './clock';
import type { LoadedConfig } from './config/load';
import type { ProviderConfig, SubscriberConfig } from './config/schema';
import { ConnectService } from './connect/connect-service';
import { DevicePoller } from './connect/device-poller';
import { ConnectSessions } from './connect/sessions';
import { CredentialService } from './credentials/credential-service';
import { Revoker } from './credentials/revoker';
import { SealedCredentials } from './credentials/sealed-credentials';
import { Envelope } from './crypto/envelope';
import { LocalKeyWrapper } from './crypto/key-wrapper';
import type { Keyring } from './crypto/keyring';
import { KeyringHolder } from './crypto/keyring-holder';
import { KeyAdmin } from './admin/key-admin';
import { RewrapJobs } from './admin/rewrap';
import { readKeyring } from './config/load';
import { KeyringError } from './crypto/keyring';
import { createAuditLog, createLogger, type AuditLog } from './observability/logger';
import { InProcessEventBus, type EventBus } from './events/event-bus';
import { Metrics } from './observability/metrics';
import { hooksOf } from './providers/catalog';
import { OAuth1HttpClient } from './providers/oauth1/oauth1-client';
import { OAuth2Client } from './providers/oauth2-client';
import { Refresher } from './refresh/refresher';
import { Scheduler } from './refresh/scheduler';
import { CredentialStore } from './store/credential-store';
import { DeliveryStore } from './store/delivery-store';
import { Keys } from './store/keys';
import { closeRedis, openRedis, type RedisClient, type RedisConnection } from './store/redis';
import { createVerifier, type InboundVerifier } from './webhooks/inbound/verifier';
import { WebhookDispatcher } from './webhooks/outbound/dispatcher';
import { OutboxRelay } from './webhooks/outbound/outbox-relay';
import { webhookSecretBytes } from './webhooks/outbound/signer';
import { eventMatches, type Subscriber } from './webhooks/outbound/subscribers';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export interface Deps {
  loaded: LoadedConfig;
  config: LoadedConfig['config'];
  providers: ReadonlyMap<string, ProviderConfig>;
  logger: Logger;
  audit: AuditLog;
  metrics: Metrics;
  clock: Clock;
  /** One Redis, a Redis Cluster or a Sentinel group's master (config redis.url / cluster / sentinel). */
  redis: RedisClient;
  keys: Keys;
  store: CredentialStore;
  /** The keyring in force (replaced on reload); get() is undefined when none is loaded. */
  keyring: KeyringHolder;
  keyAdmin: KeyAdmin;
  rewrap: RewrapJobs;
  credentials: CredentialService;
  events: EventBus;
  refresher: Refresher;
  scheduler: Scheduler;
  revoker: Revoker;
  deliveries: DeliveryStore;
  /** Moves events from the outboxes into webhook deliveries. */
  relay: OutboxRelay;
  /** Sends webhook deliveries. */
  dispatcher: WebhookDispatcher;
  /** The connect flows (authorization code, OAuth 1.0a, device). */
  connect: ConnectService;
  /** Polls providers for device-flow sessions. */
  devicePoller: DevicePoller;
  /** Verifiers of inbound revocation webhooks, by provider id (only providers with inboundWebhook). */
  inbound: ReadonlyMap<string, InboundVerifier>;
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
  /** The HTTP client for provider calls (default: the global fetch). */
  fetch?: typeof fetch;
  /** Scheduler poll interval (default 1000 ms). */
  pollMs?: number;
  /** How often every outbox is swept for events a crashed replica left (default 5000 ms). */
  outboxSweepMs?: number;
  /** How long an on-demand caller waits for another replica's refresh (default: the provider timeout + 2 s). */
  waitForOtherMs?: number;
}

/** Provider calls end well inside the refresh lease: a third of it, at most 10 s. */
export function providerTimeoutMs(leaseSeconds: number): number {
  return Math.min(10_000, Math.floor((leaseSeconds * 1000) / 3));
}

function toSubscriber(config: SubscriberConfig): Subscriber {
  return {
    name: config.name,
    url: config.url,
    keys: config.secrets.map((secret) => webhookSecretBytes(secret.reveal())),
    accepts: (type) => config.events.some((filter) => eventMatches(filter, type)),
  };
}

/** Where Redis is: dev mode's own server, else the configured url, cluster or sentinels, else the default URL. */
export function redisConnection(config: LoadedConfig['config']['redis'], override?: string): RedisConnection {
  if (override !== undefined) return { kind: 'url', url: override };
  if (config.cluster) return { kind: 'cluster', urls: config.cluster.map((url) => url.reveal()) };
  if (config.sentinel) {
    const { sentinels, name, username, password, sentinelUsername, sentinelPassword, tls } = config.sentinel;
    return {
      kind: 'sentinel',
      sentinels,
      name,
      username: username?.reveal(),
      password: password?.reveal(),
      sentinelUsername: sentinelUsername?.reveal(),
      sentinelPassword: sentinelPassword?.reveal(),
      tls,
    };
  }
  return { kind: 'url', url: config.url?.reveal() ?? DEFAULT_REDIS_URL };
}

/** The one place where objects are constructed and wired. Connects to Redis before returning. */
export async function createDeps(loaded: LoadedConfig, options: DepsOptions = {}): Promise<Deps> {
  const { config } = loaded;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(loaded.logLevel, options.logDestination);
  const audit = createAuditLog(options.logDestination);
  const metrics = new Metrics();
  metrics.initProviders(Object.keys(config.providers));
  const keyring = new KeyringHolder(options.keyring ?? loaded.keyring);
  const replicaId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

  const redis = await openRedis(redisConnection(config.redis, options.redisUrl), { notice: (message) => logger.info(message) });
  const keys = new Keys(options.keyPrefix ?? config.redis.keyPrefix);
  const store = new CredentialStore(redis, keys);
  const events = new InProcessEventBus(logger);
  const keyAdmin = new KeyAdmin({
    redis,
    keys,
    holder: keyring,
    readKeyring: () => {
      if (!loaded.keyringSource) throw new KeyringError('the keyring has no source to re-read');
      return readKeyring(loaded.keyringSource);
    },
    logger,
    audit,
    events,
    replicaId,
  });
  const envelope = new Envelope(new LocalKeyWrapper(keyring, undefined, () => keyAdmin.rereadForUnknownKey()));
  const rewrap = new RewrapJobs({
    redis,
    keys,
    holder: keyring,
    envelope,
    keyAdmin,
    events,
    audit,
    logger,
    replicaId,
    recordsPerSecond: config.rewrap.recordsPerSecond,
  });
  metrics.observeStore(store);
  const providers = new Map(Object.entries(config.providers));
  const random = options.random ? { random: options.random } : {};

  const sealed = new SealedCredentials({ store, envelope, clock, metrics, logger, schedule: config.refresh, ...random });
  const timeoutMs = providerTimeoutMs(config.refresh.leaseSeconds);
  const client = new OAuth2Client({ timeoutMs, ...(options.fetch ? { fetch: options.fetch } : {}) });
  const revoker = new Revoker({ store, sealed, client, providers, metrics, logger, audit, replicaId, leaseMs: config.refresh.leaseSeconds * 1000 });
  const refresher = new Refresher({
    store,
    sealed,
    client,
    orphans: (user, provider, credential) => revoker.revokeOrphans(user, provider, credential),
    events,
    metrics,
    logger,
    clock,
    providers,
    hooks: (id) => hooksOf(providers.get(id) ?? {}),
    settings: {
      leaseSeconds: config.refresh.leaseSeconds,
      maxBackoffSeconds: config.refresh.maxBackoffSeconds,
      failedEventAfterSeconds: config.refresh.failedEventAfterSeconds,
      waitForOtherMs: options.waitForOtherMs ?? timeoutMs + 2000,
      waitReplicas: config.redis.waitReplicas,
    },
    replicaId,
    ...random,
  });
  const scheduler = new Scheduler({
    store,
    refresher,
    revoker,
    providers,
    logger,
    settings: { workers: config.refresh.workers, leaseSeconds: config.refresh.leaseSeconds, pollMs: options.pollMs ?? 1000 },
  });
  const credentials = new CredentialService({ store, sealed, refresher, revoker, events, clock, audit, metrics, logger });
  const connectSessions = new ConnectSessions(redis, keys, envelope);
  const connect = new ConnectService({
    sessions: connectSessions,
    credentials,
    client,
    oauth1: new OAuth1HttpClient({ timeoutMs, ...(options.fetch ? { fetch: options.fetch } : {}) }),
    publicUrl: config.server.publicUrl ?? null,
    returnTo: config.connect?.returnTo ?? [],
    clock,
    logger,
    metrics,
  });
  const devicePoller = new DevicePoller({
    sessions: connectSessions,
    connect,
    credentials,
    client,
    providers,
    clock,
    logger,
    settings: { pollMs: options.pollMs ?? 1000, leaseMs: config.refresh.leaseSeconds * 1000, batch: 16 },
  });

  const deliveries = new DeliveryStore(redis, keys);
  const subscribers = config.webhooks.subscribers.map(toSubscriber);
  const dispatcher = new WebhookDispatcher({
    deliveries,
    subscribers,
    clock,
    logger,
    audit,
    metrics,
    replicaId,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    settings: {
      retrySchedule: config.webhooks.retrySchedule,
      timeoutMs: config.webhooks.timeoutSeconds * 1000,
      concurrency: 16,
      pollMs: options.pollMs ?? 1000,
    },
  });
  const relay = new OutboxRelay({ redis, keys, deliveries, subscribers, logger, onDeliveries: () => dispatcher.kick(), sweepMs: options.outboxSweepMs ?? 5000 });
  // The replica that made a change moves its event at once; the sweep is for crashed replicas.
  events.subscribe((event) => {
    if (event.type === 'token.refreshed') return;
    relay.kick('user' in event ? keys.outbox(event.user) : keys.globalOutbox(event.type === 'key.rotated' ? 'keys' : 'jobs'));
  });
  metrics.observeWebhooks({ deliveryCounts: () => deliveries.counts(), revocationBacklog: () => store.revocationBacklog() });
  const inbound = new Map(
    Object.entries(config.providers).flatMap(([id, provider]) =>
      provider.inboundWebhook
        ? [[id, createVerifier({ type: provider.inboundWebhook.verifier, secrets: provider.inboundWebhook.secrets.map((s) => s.reveal()), toleranceSeconds: provider.inboundWebhook.toleranceSeconds })] as const]
        : [],
    ),
  );

  return {
    loaded,
    config,
    providers,
    logger,
    audit,
    metrics,
    clock,
    redis,
    keys,
    store,
    keyring,
    keyAdmin,
    rewrap,
    credentials,
    events,
    refresher,
    scheduler,
    revoker,
    deliveries,
    relay,
    dispatcher,
    connect,
    devicePoller,
    inbound,
    callers: new CallerRegistry(config.callers),
    authFailures: new FailureLimiter({ maxFailures: 20, windowMs: 60_000, now: () => clock.now() }),
    state: { shuttingDown: false },
    async close() {
      await scheduler.stop();
      await devicePoller.stop();
      await relay.stop();
      await dispatcher.stop();
      await rewrap.stop();
      await keyAdmin.stop();
      await closeRedis(redis);
    },
  };
}
