/**
 * `npm run test:cluster`: integration suites against a real three-master Redis Cluster, and the
 * Cluster and Sentinel suites of test/integration/cluster/. TV_REDIS=cluster makes
 * RedisServer.start() (test/helpers/redis-server.ts) hand each test file a cluster of its own
 * instead of one redis-server, so the suites run unchanged.
 *
 * The files are listed one by one: the suites whose Redis work differs on a cluster (multi-key
 * steps, work over every shard, SCAN, keyless commands, leases across replicas). Left out:
 *   resilience/redis-outage          kills and restarts Redis (one node's process)
 *   server/production                starts Redis with --appendonly no / an evicting policy (one node's flags)
 *   server/dev-mode                  dev mode starts a redis-server of its own
 *   server/tls, cli/cli, http/auth   TLS, the CLI and caller authentication: no Redis topology in play
 *   webhooks/crash-restart, connect/authorization-code, connect/oauth1, tokens/sign,
 *   providers/quirks, refresh/events, refresh/smoke, http/providers, http/readiness-and-audit
 *                                    the same store paths as the suites below (records, leases,
 *                                    outboxes, sessions); left out so the run stays under 4 minutes
 */
process.env.TV_REDIS = 'cluster';

const base = require('./jest.config.js');

module.exports = {
  ...base,
  testMatch: [
    '<rootDir>/test/integration/cluster/*.test.ts',
    '<rootDir>/test/integration/http/tokens.test.ts',
    '<rootDir>/test/integration/http/errors.test.ts',
    '<rootDir>/test/integration/store/concurrent-writes.test.ts',
    '<rootDir>/test/integration/refresh/scheduler.test.ts',
    '<rootDir>/test/integration/refresh/replicas.test.ts',
    '<rootDir>/test/integration/refresh/on-demand.test.ts',
    '<rootDir>/test/integration/tokens/app-token.test.ts',
    '<rootDir>/test/integration/admin/keys.test.ts',
    '<rootDir>/test/integration/admin/rewrap.test.ts',
    '<rootDir>/test/integration/admin/rotation-replicas.test.ts',
    '<rootDir>/test/integration/revocation/upstream.test.ts',
    '<rootDir>/test/integration/connect/device.test.ts',
    '<rootDir>/test/integration/webhooks/outbound.test.ts',
    '<rootDir>/test/integration/webhooks/inbound.test.ts',
    '<rootDir>/test/integration/security/no-secrets-at-rest-or-in-logs.test.ts',
  ],
  testPathIgnorePatterns: ['/node_modules/'],
};
