import { createHash, timingSafeEqual } from 'node:crypto';
import type { CallerConfig, Scope } from '../config/schema';

/** An authenticated calling service. */
export interface Caller {
  name: string;
  scopes: ReadonlySet<Scope>;
  /** Provider ids this caller may touch; '*' for all. */
  providers: '*' | ReadonlySet<string>;
}

export function mayUseProvider(caller: Caller, provider: string): boolean {
  return caller.providers === '*' || caller.providers.has(provider);
}

/**
 * Caller API keys, kept only as SHA-256. A presented key is hashed and compared with every
 * stored hash in constant time, without stopping at the first match, so timing tells nothing
 * about which keys exist.
 */
export class CallerRegistry {
  private readonly entries: { sha256: Buffer; caller: Caller }[];

  constructor(callers: readonly CallerConfig[]) {
    this.entries = callers.flatMap((config) => {
      const caller: Caller = {
        name: config.name,
        scopes: new Set(config.scopes),
        providers: config.providers.includes('*') ? '*' : new Set(config.providers),
      };
      return config.keys.map((key) => ({ sha256: key.sha256, caller }));
    });
  }

  get size(): number {
    return this.entries.length;
  }

  authenticate(presentedKey: string): Caller | undefined {
    const digest = createHash('sha256').update(presentedKey, 'utf8').digest();
    let found: Caller | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(digest, entry.sha256) && found === undefined) found = entry.caller;
    }
    return found;
  }
}
