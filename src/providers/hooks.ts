/**
 * Provider quirks as hooks in the provider definition, not branches in the refresh or connect
 * code. The defaults follow RFC 6749; a catalog preset overrides what its provider does
 * differently, e.g. GitHub answering HTTP 200 with `error=bad_refresh_token`, or Slack nesting a
 * user token under `authed_user`.
 */
export interface ProviderHooks {
  /** Maps a provider's own error code to the RFC 6749 one the vault acts on. */
  errorCode?(code: string): string;
  /**
   * Reshapes a token endpoint answer into RFC 6749 fields before it is read (an `ok: false`
   * envelope into `error`, a nested token to the top level).
   */
  tokenResponse?(body: Record<string, unknown>): Record<string, unknown>;
  /** The provider's account id from a token answer, for providers that put it there. */
  accountId?(body: Record<string, unknown>): string | null;
}

export const standardHooks: ProviderHooks = {};

/** Hooks that only rename error codes. */
export function errorCodes(map: Record<string, string>): Pick<ProviderHooks, 'errorCode'> {
  return { errorCode: (code) => map[code] ?? code };
}
