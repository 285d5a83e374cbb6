import { z } from 'zod';
import { mayUseProvider, type Caller } from '../auth/callers';
import { isAppProvider, PROVIDER_ID, type OAuth2ProviderConfig, type ProviderConfig } from '../config/schema';
import type { Deps } from '../deps';
import { ForbiddenError, InvalidRequestError, NotFoundError } from '../errors';

/** 1–256 bytes of [A-Za-z0-9._@:+|-], not starting with "_" (reserved, as in `_app`). */
export const USER_ID = /^[A-Za-z0-9.@:+|-][A-Za-z0-9._@:+|-]{0,255}$/;

export const userId = z.string().regex(USER_ID, 'user ids are 1-256 characters of A-Z a-z 0-9 . _ @ : + | - and do not start with _');
export const providerId = z.string().regex(PROVIDER_ID, 'provider ids match ^[a-z0-9][a-z0-9_-]{0,63}$');

export const userParams = z.strictObject({ user: userId });
export const credentialParams = z.strictObject({ user: userId, provider: providerId });
export const providerParams = z.strictObject({ provider: providerId });

/** The provider's configuration, if this caller may use it: 403 when not allowed, 404 when unknown. */
export function requireProvider(deps: Deps, caller: Caller, id: string): ProviderConfig {
  if (!mayUseProvider(caller, id)) throw new ForbiddenError(`caller "${caller.name}" may not use provider "${id}"`);
  const provider = deps.providers.get(id);
  if (!provider) throw new NotFoundError(`provider "${id}" is not configured`);
  return provider;
}

/** A client-credentials provider this caller may use: its app token lives at /tokens/_app/:provider. */
export function requireAppProvider(deps: Deps, caller: Caller, id: string): OAuth2ProviderConfig {
  const provider = requireProvider(deps, caller, id);
  if (!isAppProvider(provider)) throw new InvalidRequestError(`provider "${id}" has no app token: it is not a client_credentials provider`);
  return provider;
}

export function credentialPath(user: string, provider: string): string {
  return `/tokens/${encodeURIComponent(user)}/${encodeURIComponent(provider)}`;
}
