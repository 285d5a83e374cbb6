/**
 * Provider quirks as hooks in the provider definition, not branches in the refresh code. The
 * defaults follow RFC 6749; a provider preset (the catalog) overrides what its provider does
 * differently, e.g. GitHub answering HTTP 200 with `error=bad_refresh_token`.
 */
export interface ProviderHooks {
  /** Maps a provider's own error code to the RFC 6749 one the vault acts on. */
  errorCode?(code: string): string;
}

export const standardHooks: ProviderHooks = {};
