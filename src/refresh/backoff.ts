/**
 * Delay before the next attempt after `failures` failures in a row: exponential from 1 s,
 * capped at `maxBackoffSeconds`, with jitter over the upper half so replicas do not retry in
 * step. A provider's Retry-After is honoured as a floor (itself capped at an hour, so a wild
 * value cannot park a credential until its token is long dead; on-demand probes still run).
 */
const MAX_RETRY_AFTER_SECONDS = 3600;

export function backoffMs(failures: number, maxBackoffSeconds: number, retryAfterSeconds: number | null, random: () => number = Math.random): number {
  const ceiling = Math.min(maxBackoffSeconds * 1000, 1000 * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  const floor = retryAfterSeconds === null ? 0 : Math.min(retryAfterSeconds, MAX_RETRY_AFTER_SECONDS) * 1000;
  return Math.round(Math.max(jittered, floor));
}
