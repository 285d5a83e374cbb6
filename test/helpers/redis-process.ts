import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from '../../src/dev/dev-mode';

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
