import type { Output } from './io';

export interface Progress {
  total: number;
  done: number;
  failed: number;
  skipped: number;
  rate: number;
  eta_seconds: number | null;
}

const PLAIN_EVERY_MS = 5000;

/**
 * Progress of a long job on stderr. On a terminal, one bar redrawn in place; otherwise (a log, a
 * CI job) a plain line when something changed, at most every 5 s, and always the last one.
 */
export class ProgressReporter {
  private lastPlain: { at: number; text: string } | undefined;
  private drawn = false;

  constructor(
    private readonly out: Output,
    private readonly now: () => number,
  ) {}

  update(progress: Progress): void {
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${this.bar(progress)}`);
      this.drawn = true;
      return;
    }
    const text = describe(progress);
    if (this.lastPlain && (text === this.lastPlain.text || this.now() - this.lastPlain.at < PLAIN_EVERY_MS)) return;
    this.plain(text);
  }

  /** The final state, whatever the throttle says; leaves the cursor on a fresh line. */
  finish(progress: Progress): void {
    if (this.out.isTTY) {
      this.update(progress);
      this.out.write('\n');
      this.drawn = false;
    } else if (describe(progress) !== this.lastPlain?.text) {
      this.plain(describe(progress));
    }
  }

  /** Prints a message on its own line, below the bar. */
  note(message: string): void {
    this.clear();
    this.out.write(`${message}\n`);
  }

  clear(): void {
    if (this.drawn) this.out.write('\r\x1b[2K');
    this.drawn = false;
  }

  private plain(text: string): void {
    this.out.write(`${text}\n`);
    this.lastPlain = { at: this.now(), text };
  }

  private bar(progress: Progress): string {
    const text = describe(progress);
    const width = Math.max(10, Math.min(40, this.out.columns - text.length - 4));
    const filled = Math.round(fraction(progress) * width);
    return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`;
  }
}

function fraction({ total, done, failed, skipped }: Progress): number {
  return total > 0 ? Math.min(1, (done + failed + skipped) / total) : 1;
}

export function describe(progress: Progress): string {
  const percent = Math.floor(fraction(progress) * 100);
  const failed = progress.failed > 0 ? `, ${progress.failed} failed` : '';
  return `${percent}% ${progress.done}/${progress.total} done${failed}, ${progress.rate}/s, ETA ${formatDuration(progress.eta_seconds)}`;
}

export function formatDuration(seconds: number | null): string {
  if (seconds === null) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
