import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import type { Redis } from 'ioredis';

/**
 * Small tools shared by integration tests that look at a vault from outside: a real listening
 * server (when several replicas or many concurrent requests are in play), everything Redis holds
 * under a prefix, and a search for secrets in text or bytes.
 */

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 25 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(condition: () => Promise<T | undefined | null | false> | T | undefined | null | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

export interface Listening {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** The app on a random loopback port. */
export async function listen(app: Express): Promise<Listening> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Every key under `prefix` and every field, member and value stored in them, as bytes. */
export async function dumpRedis(client: Redis, prefix: string): Promise<{ keys: string[]; values: Buffer }> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  const parts: Buffer[] = [];
  for (const key of keys) {
    parts.push(Buffer.from(key));
    const type = await client.type(key);
    if (type === 'string') parts.push((await client.getBuffer(key)) ?? Buffer.alloc(0));
    else if (type === 'hash') for (const [field, value] of Object.entries(await client.hgetallBuffer(key))) parts.push(Buffer.from(field), value);
    else if (type === 'set') parts.push(...(await client.smembersBuffer(key)));
    else if (type === 'zset') parts.push(...(await client.zrangeBuffer(key, '0', '-1')));
    else if (type === 'list') parts.push(...(await client.lrangeBuffer(key, '0', '-1')));
    else if (type !== 'none') throw new Error(`unexpected Redis type ${type} at ${key}`);
  }
  return { keys, values: Buffer.concat(parts) };
}

/** A secret as it may appear once copied somewhere: as is, percent-encoded, base64, base64url or hex. */
function forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  return [...new Set([value, encodeURIComponent(value), bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex')])];
}

/** The names of the secrets (by their label) that occur in `haystack` in any of their usual forms. */
export function secretsIn(haystack: string | Buffer, secrets: Record<string, string>): string[] {
  const text = Buffer.isBuffer(haystack) ? haystack.toString('latin1') : haystack;
  return Object.entries(secrets)
    .filter(([, value]) => forms(value).some((form) => text.includes(form)))
    .map(([name]) => name);
}
