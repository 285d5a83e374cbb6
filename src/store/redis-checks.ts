import { Cluster, type Redis } from 'ioredis';
import type { RedisClient } from './redis';
import { mastersOf, nodeId, viaSentinel } from './topology';

/**
 * Start-up warnings about the connected Redis (DESIGN §2, §5). A vault whose Redis loses data
 * forces every user to reconnect, and eviction silently deletes credentials. On a Redis Cluster
 * every master holds part of the credentials, so each one is checked and named; behind Sentinel
 * the master the vault writes to is.
 */
export async function redisWarnings(redis: RedisClient): Promise<string[]> {
  const masters = mastersOf(redis);
  const named = redis instanceof Cluster || viaSentinel(redis);
  const warnings = await Promise.all(masters.map((node) => nodeWarnings(node, named ? describeNode(redis, node) : 'Redis')));
  return warnings.flat();
}

function describeNode(redis: RedisClient, node: Redis): string {
  if (redis instanceof Cluster) return `Redis Cluster master ${nodeId(node)}`;
  return `Redis master ${nodeId(node)} (sentinel group ${redis.options.name ?? '?'})`;
}

async function nodeWarnings(node: Redis, name: string): Promise<string[]> {
  const warnings: string[] = [];
  let info: string;
  try {
    info = (await node.info('persistence')) + (await node.info('memory'));
  } catch {
    return [`could not read ${name} INFO to check persistence and eviction settings`];
  }
  const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
  if (field('aof_enabled') !== '1') {
    warnings.push(`${name} has no AOF persistence (appendonly no): a restart can lose stored and rotated credentials; use appendonly yes`);
  }
  const policy = field('maxmemory_policy');
  if (policy !== undefined && policy !== 'noeviction') {
    warnings.push(`${name} maxmemory-policy is ${policy}: eviction deletes credentials silently; use noeviction`);
  }
  return warnings;
}
