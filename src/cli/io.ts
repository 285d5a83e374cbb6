import { randomBytes } from 'node:crypto';

/**
 * What a command may touch of the outside world. main.ts builds the real one; everything a
 * command's behaviour depends on (clock, random source, HTTP client, environment) comes from
 * here, so a command never reaches for process.* itself.
 */
export interface Output {
  write(text: string): void;
  /** True when the stream is a terminal (progress bars redraw in place only then). */
  readonly isTTY: boolean;
  readonly columns: number;
}

export interface Io {
  stdout: Output;
  stderr: Output;
  env: NodeJS.ProcessEnv;
  cwd: string;
  now(): Date;
  randomBytes(size: number): Buffer;
  fetch: typeof fetch;
  sleep(ms: number): Promise<void>;
  /** Runs `handler` on Ctrl-C until the returned function is called. */
  onInterrupt(handler: () => void): () => void;
}

function output(stream: NodeJS.WriteStream): Output {
  return {
    write: (text) => void stream.write(text),
    get isTTY() {
      return stream.isTTY === true;
    },
    get columns() {
      return stream.columns ?? 80;
    },
  };
}

export function processIo(): Io {
  return {
    stdout: output(process.stdout),
    stderr: output(process.stderr),
    env: process.env,
    cwd: process.cwd(),
    now: () => new Date(),
    randomBytes: (size) => randomBytes(size),
    fetch: (input, init) => fetch(input, init),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    onInterrupt: (handler) => {
      process.once('SIGINT', handler);
      return () => void process.off('SIGINT', handler);
    },
  };
}

/** Exit statuses: 0 success, 1 the operation failed or was refused, 2 the command line is wrong. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A failure the user should read: printed as `token-vault: <message>`, then the process exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILED,
    /** Extra lines printed under the message (API error details, config issues). */
    readonly lines: string[] = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A wrong command line; the command's usage is printed after the message. */
export class UsageError extends CliError {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message, EXIT_USAGE);
  }
}
