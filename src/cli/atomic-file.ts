import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `path` with `content` so that a reader (the vault's keyring watch, another replica
 * reading a shared volume) sees either the old file or the new one, never half of it: a temp
 * file beside it, created with `mode`, synced, then renamed over the target.
 */
export function writeFileAtomic(path: string, content: string, mode: number, random: (size: number) => Buffer): void {
  const temp = join(dirname(path), `.${basename(path)}.${random(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', mode);
  try {
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    try {
      unlinkSync(temp);
    } catch {
      // already renamed or never written; the original error is the one to report
    }
    throw err;
  }
}
