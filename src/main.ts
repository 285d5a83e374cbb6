import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import pino from 'pino';
import { ConfigError, loadConfig, type LoadedConfig } from './config/load';
import { createDeps, type Deps, type DepsOptions } from './deps';
import { prepareDev } from './dev/dev-mode';
import { createLogger } from './observability/logger';
import { createListeners } from './server/listeners';
import { redisWarnings } from './store/redis-checks';

const SHUTDOWN_GRACE_MS = 10_000;

/**
 * Reads the configuration, wires the dependencies, listens (HTTP or HTTPS, and the public-routes
 * port when configured), and shuts down gracefully: on SIGTERM or SIGINT it stops accepting
 * connections on every listener, finishes in-flight requests, closes Redis (and the dev
 * redis-server, if it started one), flushes the logs and exits 0.
 */
async function main(): Promise<void> {
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig({ env: process.env, cwd: process.cwd() });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`token-vault: ${err.message}\n`);
    process.exit(1);
  }

  // Asynchronous writes keep logging off the hot path; flushed before exit.
  const destination = pino.destination({ dest: 1, sync: false });
  const logger = createLogger(loaded.logLevel, destination);
  const fail = (message: string, err?: unknown) => {
    logger.fatal({ reason: err instanceof Error ? err.message : undefined }, message);
    destination.flushSync();
    process.exit(1);
  };
  logger.info({ mode: loaded.mode, config: loaded.path ?? '(none)' }, 'starting token-vault');
  for (const warning of loaded.warnings) logger.warn(warning);

  const options: DepsOptions = { logDestination: destination, logger };
  let stopDevRedis = async () => undefined as void;
  if (loaded.mode === 'development') {
    try {
      const dev = await prepareDev(loaded, process.cwd(), logger);
      loaded = dev.loaded;
      Object.assign(options, { redisUrl: dev.redisUrl, keyring: dev.keyring }, dev.keyPrefix ? { keyPrefix: dev.keyPrefix } : {});
      stopDevRedis = dev.stop;
    } catch (err) {
      return fail('dev mode could not prepare Redis, keyring or callers', err);
    }
  }

  let deps: Deps;
  try {
    deps = await createDeps(loaded, options);
  } catch (err) {
    await stopDevRedis();
    return fail('cannot start: Redis is not reachable', err);
  }
  for (const warning of await redisWarnings(deps.redis)) logger.warn(warning);
  await deps.keyAdmin.start();
  deps.scheduler.start();
  deps.devicePoller.start();
  deps.relay.start();
  deps.dispatcher.start();
  deps.rewrap.watch();
  watchKeyring(deps, loaded);

  const listeners = createListeners(deps);
  for (const listener of listeners) {
    const { server, host, port, scheme, surface } = listener;
    server.listen(port, host, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : port;
      const url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${bound}`;
      const fields = { host, port: bound, ...(scheme === 'https' ? { tls: true, clientCert: listener.clientCert } : {}) };
      if (surface === 'public') logger.info({ ...fields, surface }, `token-vault public routes listening on ${url}`);
      else logger.info(fields, `token-vault listening on ${url}`);
    });
    server.on('error', (err) => void stopDevRedis().finally(() => fail(`cannot listen on ${host}:${port}`, err)));
  }

  const shutdown = async (signal: string) => {
    if (deps.state.shuttingDown) return;
    deps.state.shuttingDown = true;
    const servers = listeners.map((listener) => listener.server);
    // close() shuts the listening socket at once; its callback waits for open connections.
    const closed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    for (const server of servers) server.closeIdleConnections();
    logger.info({ signal }, 'shutting down: refusing new connections, finishing in-flight requests');
    const force = setTimeout(() => servers.forEach((server) => server.closeAllConnections()), SHUTDOWN_GRACE_MS);
    // A keep-alive connection whose request was in flight turns idle when its response ends;
    // close such connections as they appear instead of waiting for the grace period.
    const sweep = setInterval(() => servers.forEach((server) => server.closeIdleConnections()), 100);
    await closed;
    clearTimeout(force);
    clearInterval(sweep);
    await deps.close(); // stops the scheduler (waiting for refreshes in flight), then Redis
    await stopDevRedis();
    logger.info('stopped');
    destination.flushSync();
    process.exit(0);
  };
  // on, not once: a terminal's Ctrl-C can arrive twice (directly and forwarded by npm).
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => fail('unhandled rejection', err));
}

/**
 * SIGHUP, and a change to the keyring file, re-read the keyring. A keyring that does not parse
 * (a half-written file) or lacks a key in use is refused and the old one stays in force.
 */
function watchKeyring(deps: Deps, loaded: LoadedConfig): void {
  const reload = (why: string) =>
    void deps.keyAdmin.reload(`replica:${why}`).then(
      (status) => deps.logger.info({ why, active: status.active }, 'keyring reloaded'),
      (err: unknown) => deps.logger.warn({ why, reason: err instanceof Error ? err.message : String(err) }, 'keyring reload refused; the old keyring stays in force'),
    );
  process.on('SIGHUP', () => reload('SIGHUP'));
  const source = loaded.keyringSource;
  if (source?.kind !== 'file') return;
  let timer: NodeJS.Timeout | undefined;
  // Watch the folder, not the file: editors and Kubernetes secret mounts replace the file.
  const watcher = watch(dirname(source.path), (_event, name) => {
    if (name !== null && name !== basename(source.path) && !name.startsWith('..')) return;
    clearTimeout(timer);
    timer = setTimeout(() => reload('keyring file changed'), 500);
  });
  watcher.unref();
}

main().catch((err: unknown) => {
  process.stderr.write(`token-vault: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
