/**
 * Is `returnTo` one of the allowed places (config `connect.returnTo`)? Compared as parsed URLs:
 * same origin (scheme, host, port) and a path under an allowed path, segment by segment, so
 * `https://app.example.com/integrations` allows `/integrations/done` but not `/integrations-evil`
 * nor `https://app.example.com.evil.test/`. URLs with credentials are refused outright.
 */
export function isAllowedReturnTo(returnTo: string, allowed: readonly string[]): boolean {
  if (!URL.canParse(returnTo)) return false;
  const url = new URL(returnTo);
  if (!/^https?:$/.test(url.protocol) || url.username !== '' || url.password !== '') return false;
  return allowed.some((entry) => {
    const base = new URL(entry);
    if (base.origin !== url.origin) return false;
    const prefix = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
    return url.pathname === base.pathname || url.pathname.startsWith(prefix);
  });
}

/** `returnTo` with the flow's outcome added to its query. */
export function withOutcome(returnTo: string, outcome: Record<string, string>): string {
  const url = new URL(returnTo);
  for (const [name, value] of Object.entries(outcome)) url.searchParams.set(name, value);
  return url.toString();
}
