import { takeViolations } from './openapi-contract';

/**
 * Registered in jest.config.js: a test fails when a response it received (through a vault built
 * by startVault) does not match openapi.yaml. Fix the endpoint's response schemas, not the test,
 * then run `npm run openapi`.
 */
function assertNoViolations(): void {
  const violations = takeViolations();
  if (violations.length > 0) {
    throw new Error(`responses that openapi.yaml does not describe (fix the endpoint's schemas in src/http/endpoints, then npm run openapi):\n  ${violations.join('\n  ')}`);
  }
}

afterEach(assertNoViolations);
afterAll(assertNoViolations);
