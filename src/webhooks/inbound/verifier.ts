import { createGenericVerifier } from './generic';
import { createGithubVerifier } from './github';
import { createSlackVerifier } from './slack';

/**
 * Verifiers for `POST /webhooks/:provider/revocation`. Each one checks the provider's signature
 * on the raw body bytes first, and only then parses the body and says what the endpoint should
 * do. Reasons are fixed strings: they never quote a secret, a signature or the body.
 */
export interface InboundRequest {
  /** Header by lower-case name (first value). */
  header(name: string): string | undefined;
  /** The body exactly as received; verified before it is parsed. */
  rawBody: Buffer;
  /** Now in ms (injected clock). */
  now: number;
}

/** What the endpoint does with a request. */
export type Verification =
  /** Signature or timestamp not verifiable → 401, nothing changes. */
  | { kind: 'reject'; reason: string }
  /** Verified, but the body is not understood → 400. */
  | { kind: 'invalid'; reason: string }
  /** A verified handshake, answered as 200 JSON (Slack url_verification). */
  | { kind: 'answer'; body: Record<string, unknown> }
  /** Verified, not a revocation (GitHub ping, other events) → 200. */
  | { kind: 'ignore'; deliveryId: string | null; event: string }
  /** A verified revocation of these provider account ids. */
  | { kind: 'revoke'; deliveryId: string; event: string; accountIds: string[] };

export interface InboundVerifier {
  verify(request: InboundRequest): Verification;
}

export type InboundVerifierType = 'generic' | 'github' | 'slack';

export interface InboundVerifierConfig {
  type: InboundVerifierType;
  /** Several while the provider's secret is rotated: a request verifying under any is accepted. */
  secrets: readonly string[];
  toleranceSeconds: number;
}

/** Throws when a secret cannot be used, so a bad configuration fails at start, not per request. */
export function createVerifier(config: InboundVerifierConfig): InboundVerifier {
  switch (config.type) {
    case 'generic':
      return createGenericVerifier(config.secrets, config.toleranceSeconds);
    case 'github':
      return createGithubVerifier(config.secrets);
    case 'slack':
      return createSlackVerifier(config.secrets, config.toleranceSeconds);
  }
}
