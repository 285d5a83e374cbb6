import type { PresetParam } from './preset';

/**
 * A DNS host name: labels of letters, digits and inner hyphens, separated by dots. Nothing else,
 * so a value cannot carry a port, a path, credentials, a query or a fragment into a URL
 * template (`evil.com/x?`, `user@evil.com`, `host:8443` are all refused).
 */
export const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A `{host}`-style parameter: a bare host name, optionally with a default. */
export function hostParam(description: string, defaultHost?: string): PresetParam {
  return { description, pattern: HOST_NAME, ...(defaultHost === undefined ? {} : { default: defaultHost }) };
}
