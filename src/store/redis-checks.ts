import type { Redis } from 'ioredis';

/**
 * Start-up warnings about the connected Redis (DESIGN §2, §5). A vault whose Redis loses data
 * forces every user to reconnect, and eviction silently deletes credentials.
 */
export async function redisWarnings(redis: Redis): Promise<string[]> {
  const warnings: string[] = [];
  let info: string;
  try {
    info = (await redis.info('persistence')) + (await redis.info('memory'));
  } catch {
    return ['could not read Redis INFO to check persistence and eviction settings'];
  }
  const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
  if (field('aof_enabled') !== '1') {
    warnings.push('Redis has no AOF persistence (appendonly no): a restart can lose stored and rotated credentials; use appendonly yes');
  }
  const policy = field('maxmemory_policy');
  if (policy !== undefined && policy !== 'noeviction') {
    warnings.push(`Redis maxmemory-policy is ${policy}: eviction deletes credentials silently; use noeviction`);
  }
  return warnings;
}
