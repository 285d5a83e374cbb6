import type { ProviderHooks } from '../hooks';

/**
 * A well-known provider, as the catalog knows it: the settings a `providers.<id>` entry would
 * otherwise spell out (URLs, client authentication, scope separator, extra authorization
 * parameters, lifetimes), the code for what plain settings cannot say (hooks), and the quirks
 * in words for the README's catalog table.
 *
 * URLs may hold `{name}` parts filled from the provider's `params` (a Microsoft tenant, an Okta
 * domain); each such part is declared in `params` with the pattern its values must match, so a
 * value can never change more of the URL than its own part.
 */
export interface PresetParam {
  description: string;
  /** Used when the configuration gives none; without a default the parameter is required. */
  default?: string;
  pattern: RegExp;
}

interface PresetCommon {
  /** Display name, e.g. "Google". */
  name: string;
  /** The provider's own documentation of its OAuth endpoints. */
  docs: string;
  params?: Record<string, PresetParam>;
  /** What this provider does differently from the RFCs, one line each (README catalog table). */
  quirks: string[];
  hooks?: ProviderHooks;
}

export interface OAuth2Preset extends PresetCommon {
  type: 'oauth2';
  authorizationUrl?: string;
  tokenUrl: string;
  revocationUrl?: string;
  deviceAuthorizationUrl?: string;
  userinfoUrl?: string;
  /** Where the account id is in the userinfo answer (default `sub`). */
  accountIdField?: string;
  clientAuth: 'client_secret_basic' | 'client_secret_post';
  grant?: 'authorization_code' | 'client_credentials';
  scopeSeparator?: ' ' | ',';
  /** Scopes asked for when the configuration names none. */
  scopes?: string[];
  /** Added to every authorization URL (Google's access_type=offline). */
  authorizationParams?: Record<string, string>;
  pkce?: boolean;
  /** For answers without expires_in. */
  defaultLifetimeSeconds?: number;
  /** For refresh tokens that expire without the answer saying when. */
  refreshTokenLifetimeSeconds?: number;
  /** The inbound revocation webhook's verifier, when the provider sends such webhooks. */
  inboundVerifier?: 'generic' | 'github' | 'slack';
}

export interface OAuth1Preset extends PresetCommon {
  type: 'oauth1';
  signatureMethod: 'HMAC-SHA1' | 'HMAC-SHA256' | 'RSA-SHA1' | 'PLAINTEXT';
  includeVersion?: boolean;
  requestTokenUrl?: string;
  authorizeUrl?: string;
  accessTokenUrl?: string;
  /** Added to the authorize URL (Trello's name, scope and expiration). */
  authorizeParams?: Record<string, string>;
  /** Which access-token answer field is the account id (Twitter's user_id). */
  accountIdField?: string;
}

export type ProviderPreset = OAuth2Preset | OAuth1Preset;

const TEMPLATE_PART = /\{([a-zA-Z]+)\}/g;

/** The `{name}` parts a URL template uses. */
export function templateParts(template: string): string[] {
  return [...template.matchAll(TEMPLATE_PART)].map((match) => match[1]!);
}

/** Fills a URL template; every part must be in `values` (checked against the patterns before). */
export function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(TEMPLATE_PART, (_, name: string) => values[name]!);
}
