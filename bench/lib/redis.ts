import type { Redis } from 'ioredis';
import { RedisServer } from '../../test/helpers/redis-server';
import { onCleanup, trackDir, trackPid, untrackPid } from './cleanup';

/** AOF with fsync once a second: what production should run (the vault warns without persistence). */
export const PRODUCTION_REDIS = ['--appendonly', 'yes', '--appendfsync', 'everysec'];
/** No persistence: for suites that write a lot and measure something else. */
export const VOLATILE_REDIS = ['--appendonly', 'no'];

export interface BenchRedis {
  server: RedisServer;
  url: string;
  pid: number;
  /** A client for the bench's own reads and writes (closed by stop()). */
  client: Redis;
  stop(): Promise<void>;
}

/**
 * A redis-server of the test harness (random loopback port, its own temp dir), registered for
 * cleanup: stopped and its directory removed however the bench ends.
 */
export async function startRedis(args: string[]): Promise<BenchRedis> {
  const server = await RedisServer.start(args);
  trackDir(server.dir);
  const client = server.client();
  const pid = Number(infoField(await client.info('server'), 'process_id'));
  trackPid(pid);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    unregister();
    client.disconnect();
    await server.stop();
    untrackPid(pid);
  };
  const unregister = onCleanup(`redis-server ${server.port}`, stop);
  return { server, url: server.url, pid, client, stop };
}

export function infoField(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

export async function usedMemory(client: Redis): Promise<number> {
  return Number(infoField(await client.info('memory'), 'used_memory'));
}

/** INFO commandstats as command → calls. */
export async function commandCalls(client: Redis): Promise<Map<string, number>> {
  const info = await client.info('commandstats');
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1] as string, Number(match[2]));
  return calls;
}

/** after − before, per command, without zeros. */
export function callsBetween(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [command, calls] of after) {
    const delta = calls - (before.get(command) ?? 0);
    if (delta > 0) out[command] = delta;
  }
  return out;
}
