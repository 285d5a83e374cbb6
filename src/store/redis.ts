import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis, ReplyError, type Result } from 'ioredis';
import { AppError, UnavailableError } from '../errors';

/**
 * The Lua scripts of store/lua/, defined on every connection with defineCommand (EVALSHA, and
 * EVAL again after a Redis restart flushed the script cache). Their replies are arrays whose
 * first element is a status from LuaStatus.
 */
const SCRIPTS = {
  putCredential: { file: 'put-credential.lua', keys: 8 },
  deleteCredential: { file: 'delete-credential.lua', keys: 9 },
  claimDue: { file: 'claim-due.lua', keys: 3 },
  finishRevocation: { file: 'finish-revocation.lua', keys: 3 },
  acquireLease: { file: 'acquire-lease.lua', keys: 3 },
  leaseHeld: { file: 'lease-held.lua', keys: 1 },
  releaseLease: { file: 'release-lease.lua', keys: 3 },
  recordFailure: { file: 'record-failure.lua', keys: 5 },
  rewrapCredential: { file: 'rewrap-credential.lua', keys: 2 },
  jobLease: { file: 'job-lease.lua', keys: 1 },
  activateKey: { file: 'activate-key.lua', keys: 3 },
  // The number of deliveries varies: numberOfKeys is given with each call.
  enqueueDeliveries: { file: 'enqueue-deliveries.lua', keys: null },
  claimDeliveries: { file: 'claim-deliveries.lua', keys: 2 },
  completeDelivery: { file: 'complete-delivery.lua', keys: 5 },
  retryDelivery: { file: 'retry-delivery.lua', keys: 4 },
  claimDevicePolls: { file: 'claim-device-polls.lua', keys: 1 },
} as const;

/** First element of a script's reply. 0 means "absent" (put, delete) or "held by another" (acquire-lease). */
export enum LuaStatus {
  NoCredential = -3,
  TooSoon = -2,
  VersionMismatch = -1,
  Absent = 0,
  Done = 1,
}

type ScriptArg = string | number | Buffer;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    putCredential(...args: ScriptArg[]): Result<[number, number, string?, number?], Context>;
    deleteCredential(...args: ScriptArg[]): Result<[number, number], Context>;
    claimDue(...args: ScriptArg[]): Result<[number, number, ...string[]], Context>;
    finishRevocation(...args: ScriptArg[]): Result<number, Context>;
    acquireLease(...args: ScriptArg[]): Result<[number, number], Context>;
    leaseHeld(...args: ScriptArg[]): Result<number, Context>;
    releaseLease(...args: ScriptArg[]): Result<number, Context>;
    recordFailure(...args: ScriptArg[]): Result<[number, number, number, number, number, number], Context>;
    rewrapCredential(...args: ScriptArg[]): Result<number, Context>;
    jobLease(...args: ScriptArg[]): Result<[number, number], Context>;
    activateKey(...args: ScriptArg[]): Result<number, Context>;
    /** enqueueDeliveries(numberOfKeys, ...keys, ...args) */
    enqueueDeliveries(...args: ScriptArg[]): Result<number, Context>;
    claimDeliveries(...args: ScriptArg[]): Result<[number, ...string[]], Context>;
    completeDelivery(...args: ScriptArg[]): Result<[number, number], Context>;
    retryDelivery(...args: ScriptArg[]): Result<number, Context>;
    claimDevicePolls(...args: ScriptArg[]): Result<[number, ...string[]], Context>;
  }
}

export interface RedisOptions {
  /** Shown in CLIENT LIST, so an operator can tell the vault's connections apart. */
  connectionName?: string;
}

/**
 * A connection that fails fast: with the offline queue off, a command issued while Redis is
 * unreachable is rejected at once (and answered 503) instead of piling up. It reconnects by
 * itself; the first connect is awaited by the caller.
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    commandTimeout: 5000,
    connectionName: options.connectionName ?? 'token-vault',
    retryStrategy: (attempt) => Math.min(100 * attempt, 2000),
  });
  // Errors reach callers as rejected commands and /readyz; the event itself only needs a listener.
  redis.on('error', () => undefined);
  for (const [name, script] of Object.entries(SCRIPTS)) {
    const lua = readFileSync(join(__dirname, 'lua', script.file), 'utf8');
    redis.defineCommand(name, script.keys === null ? { lua } : { numberOfKeys: script.keys, lua });
  }
  return redis;
}

/** Connects, or throws after `timeoutMs` with the reason (never the URL: it may hold a password). */
export async function connectRedis(redis: Redis, timeoutMs = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot connect to Redis: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Replies that mean "Redis is there but cannot serve right now": answered 503, not 500. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS|MISCONF)\b/;

/** Maps a failed Redis call to what the caller should see. */
export function toStoreError(err: unknown): Error {
  if (err instanceof AppError) return err;
  if (err instanceof ReplyError && !TRANSIENT_REPLY.test((err as Error).message)) return err as Error;
  return new UnavailableError('the credential store is unavailable; retry shortly', 1, err);
}

/** Runs a Redis operation, turning its failures into what the caller should see (toStoreError). */
export async function withStoreErrors<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    throw toStoreError(err);
  }
}
