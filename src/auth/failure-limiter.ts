/**
 * Counts failed authentications per source address in a fixed window; past the limit the
 * address is refused (429) until the window ends. Per replica and in memory: it slows guessing,
 * it is not a distributed quota. The map is swept so a scan from many addresses cannot grow it
 * without bound.
 */
export interface FailureLimiterOptions {
  maxFailures: number;
  windowMs: number;
  now: () => number;
  maxTracked?: number;
}

interface Window {
  start: number;
  failures: number;
}

export class FailureLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly options: FailureLimiterOptions) {}

  /** Seconds until `address` may try again, or 0 when it may try now. */
  blockedFor(address: string): number {
    const window = this.current(address);
    if (!window || window.failures < this.options.maxFailures) return 0;
    return Math.max(1, Math.ceil((window.start + this.options.windowMs - this.options.now()) / 1000));
  }

  recordFailure(address: string): void {
    const window = this.current(address);
    if (window) {
      window.failures += 1;
      return;
    }
    if (this.windows.size >= (this.options.maxTracked ?? 10_000)) this.sweep();
    this.windows.set(address, { start: this.options.now(), failures: 1 });
  }

  private current(address: string): Window | undefined {
    const window = this.windows.get(address);
    if (window && this.options.now() - window.start >= this.options.windowMs) {
      this.windows.delete(address);
      return undefined;
    }
    return window;
  }

  private sweep(): void {
    const now = this.options.now();
    for (const [address, window] of this.windows) {
      if (now - window.start >= this.options.windowMs) this.windows.delete(address);
    }
    // Still full: forget the oldest entries rather than grow.
    for (const address of this.windows.keys()) {
      if (this.windows.size < (this.options.maxTracked ?? 10_000)) break;
      this.windows.delete(address);
    }
  }
}
