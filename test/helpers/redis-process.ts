import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { freePort as ephemeralPort } from '../../src/dev/dev-mode';

/**
 * One redis-server (or sentinel) process on a loopback port, started by the test harness:
 * the building block of RedisServer, RedisCluster and SentinelGroup.
 */
export class RedisProcess {
  private constructor(
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly log: { text: string },
  ) {}

  /** Starts `redis-server <args>` and waits until it answers PING on `port`. */
  static async start(port: number, args: string[], timeoutMs = 10_000): Promise<RedisProcess> {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = { text: '' };
    child.stdout?.on('data', (chunk: Buffer) => (log.text += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (log.text += chunk.toString()));
    const started = new RedisProcess(port, child, log);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${log.text.slice(-500)}`);
      if (await answersPing(port)) return started;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await started.kill();
    throw new Error(`redis-server did not start on port ${port}: ${log.text.slice(-500)}`);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** What the process printed, for failure messages. */
  output(): string {
    return this.log.text;
  }

  /** SIGKILL: the server dies without a chance to do anything. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!this.alive) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    child.stdout?.destroy();
    child.stderr?.destroy();
  }
}

/** PING over a plain socket (an ioredis client would leave its disconnect timer behind). */
export function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/**
 * The first port of the kernel's ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range),
 * from which it picks the local port of every outgoing connection and of every listen(0).
 */
function ephemeralRangeStart(): number | null {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : null;
  } catch {
    return null;
  }
}

/** Nothing listens on `port` (on any address) right now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.once('error', () => resolveFree(false));
    server.listen(port, '0.0.0.0', () => server.close(() => resolveFree(true)));
  });
}

/**
 * A free port for a server a test starts (redis-server, a vault process), drawn at random below
 * the kernel's ephemeral range. A port the kernel hands out with listen(0) is free only until the
 * next connection on the machine takes it as its local port, and parallel test files open
 * hundreds (a cluster client alone opens one per node): a vault started a moment later on such a
 * port met EADDRINUSE. Below the range, only another test's explicit choice can take it. Where
 * the range is unknown or starts low, the kernel's choice is used.
 */
export async function freePort(): Promise<number> {
  const start = ephemeralRangeStart();
  if (start === null || start < 12_000) return ephemeralPort();
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (start - 10_000));
    if (await canListen(port)) return port;
  }
}

/** `count` distinct free loopback ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it holds; fails naming `what` after `timeoutMs`. */
export async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 15_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * MONITOR on one node over a plain socket, calling `onCommand` with each command's arguments
 * (name first, lower-cased). Not an ioredis monitor: a busy node's first lines can arrive with
 * MONITOR's OK, before ioredis has switched the connection to monitor mode.
 */
export async function monitorNode(port: number, onCommand: (args: string[]) => void): Promise<{ stop(): void }> {
  const socket = connect(port, '127.0.0.1');
  let buffer = '';
  let ready: () => void = () => undefined;
  const ok = new Promise<void>((resolve) => (ready = resolve));
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (line === '+OK') ready();
      else if (line.startsWith('+')) {
        const args = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((match) => match[1]!.replace(/\\(.)/g, '$1'));
        if (args.length > 0) onCommand([args[0]!.toLowerCase(), ...args.slice(1)]);
      }
    }
  });
  socket.on('error', () => undefined);
  socket.write('MONITOR\r\n');
  await ok;
  return { stop: () => socket.destroy() };
}
