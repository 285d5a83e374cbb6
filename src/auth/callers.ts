import { createHash, timingSafeEqual } from 'node:crypto';
import type { CallerConfig, Scope } from '../config/schema';
import type { DistinguishedName } from '../tls/distinguished-name';

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
 * Who the callers are: API keys, kept only as SHA-256, and client certificate subjects (mTLS).
 * A presented key is hashed and compared with every stored hash in constant time, without
 * stopping at the first match, so timing tells nothing about which keys exist.
 */
export class CallerRegistry {
  private readonly entries: { sha256: Buffer; caller: Caller }[];
  private readonly subjects: { subject: DistinguishedName; caller: Caller }[];

  constructor(callers: readonly CallerConfig[]) {
    const configured = callers.map((config) => ({
      config,
      caller: {
        name: config.name,
        scopes: new Set(config.scopes),
        providers: config.providers.includes('*') ? '*' : new Set(config.providers),
      } satisfies Caller,
    }));
    this.entries = configured.flatMap(({ config, caller }) => config.keys.map((key) => ({ sha256: key.sha256, caller })));
    this.subjects = configured.flatMap(({ config, caller }) => (config.certSubject ? [{ subject: config.certSubject, caller }] : []));
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

  /**
   * The caller whose certSubject the subject of a verified client certificate matches (the
   * `subject` of getPeerCertificate()); see DistinguishedName for the rule. Config loading
   * refuses two callers with one subject, so at most one matches.
   */
  authenticateCertificate(subject: unknown): Caller | undefined {
    return this.subjects.find((entry) => entry.subject.matches(subject))?.caller;
  }
}
