/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // The Redis Cluster and Sentinel suites run in `npm run test:cluster` (jest.cluster.config.js).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/integration/cluster/'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // Every response a test receives from startVault's app is checked against openapi.yaml.
  setupFilesAfterEnv: ['<rootDir>/test/helpers/openapi-setup.ts'],
  // Each test file starts its own redis-server; two workers match the two cores CI has.
  maxWorkers: 2,
  testTimeout: 30000,
};
