/**
 * When the scheduler should refresh a credential (DESIGN §7): `expires_at − skew − random(0..jitter)`,
 * but never before 80% of the token's life, so a short-lived token (life close to or below the
 * skew) is refreshed at 80% of its life instead of at once and again in a loop. A token without
 * an expiry is treated as living `defaultLifetimeSeconds`: it is refreshed on that schedule, never
 * "never".
 */
export interface ScheduleSettings {
  skewSeconds: number;
  jitterSeconds: number;
}

export function refreshAt(
  issuedAt: number,
  expiresAt: number | null,
  defaultLifetimeSeconds: number,
  settings: ScheduleSettings,
  random: () => number = Math.random,
): number {
  const expiry = expiresAt ?? issuedAt + defaultLifetimeSeconds * 1000;
  const life = Math.max(0, expiry - issuedAt);
  const skewed = expiry - settings.skewSeconds * 1000 - Math.floor(random() * settings.jitterSeconds * 1000);
  return Math.max(skewed, issuedAt + Math.floor(life * 0.8));
}
