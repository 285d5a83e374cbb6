import type { Logger } from 'pino';
import type { ProviderConfig } from '../config/schema';
import type { CredentialStore } from '../store/credential-store';
import { parseDueMember, SHARD_COUNT } from '../store/keys';
import type { Revoker } from '../credentials/revoker';
import type { Refresher } from './refresher';

export interface SchedulerSettings {
  /** Refreshes in flight on this replica at most. */
  workers: number;
  leaseSeconds: number;
  /** How often to look for due work (DESIGN §7: at least once a second). */
  pollMs: number;
}

export interface SchedulerDeps {
  store: CredentialStore;
  refresher: Refresher;
  revoker: Revoker;
  providers: ReadonlyMap<string, ProviderConfig>;
  logger: Logger;
  settings: SchedulerSettings;
}

/** At most one warning this often about shards whose claims fail (a cluster master down). */
const CLAIM_WARNING_GAP_MS = 10_000;

/**
 * Proactive refresh (and retries of upstream revocations) on every replica. Each tick walks the
 * shards from a moving start and claims due entries with the claim-due script, which leases
 * them, as many as there are free workers (on one Redis, 128 shards per script call; on a
 * cluster, a few shards per round trip and a few entries per shard: due entries spread evenly
 * over shards); entries beyond a provider's maxConcurrency are given back at once.
 * While work keeps coming, the next tick runs as soon as a worker is free; when nothing is due,
 * once per pollMs. A replica that dies holding claims loses nothing: the entries come due again
 * when their leases end and another replica takes them.
 */
export class Scheduler {
  private running = 0;
  private readonly perProvider = new Map<string, number>();
  private readonly active = new Set<Promise<unknown>>();
  private cursor = Math.floor(Math.random() * SHARD_COUNT);
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<number> | undefined;
  private stopped = true;
  /** The last tick found work: look again as soon as a worker is free. */
  private busy = false;
  /** When a failed claim was last logged: at most one line per gap while a node stays down. */
  private claimWarnedAt = 0;
  /** stop() was called: a tick under way ends early (it may be slow while a cluster node is down). */
  private halting = false;

  constructor(private readonly deps: SchedulerDeps) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.halting = false;
    this.schedule(this.deps.settings.pollMs);
  }

  /** Stops claiming, then waits (at most `graceMs`) for the refreshes in flight. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    this.halting = true;
    clearTimeout(this.timer);
    await this.ticking;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.active]), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  /** One pass over the shards; returns how many entries it claimed and started. */
  async tick(): Promise<number> {
    const { store, settings } = this.deps;
    let started = 0;
    // stop() waits for the tick: it ends after the round trip under way.
    for (let scanned = 0; scanned < SHARD_COUNT && this.free() > 0 && !this.halting; ) {
      // One Redis takes the free workers' worth from 128 shards in one call; a cluster asks each
      // shard apart, so there a round spans about as many shards as workers are free.
      const perTrip = store.claimsAcrossShards ? 128 : Math.min(128, Math.max(16, this.free()));
      const shards = Array.from({ length: perTrip }, (_, i) => (this.cursor + i) % SHARD_COUNT);
      this.cursor = (this.cursor + perTrip) % SHARD_COUNT;
      scanned += perTrip;
      const owner = this.deps.refresher.newOwner();
      const { claims, failures } = await store.claimDueMany(shards, this.free(), settings.leaseSeconds * 1000, owner);
      // On a Redis Cluster one master can be down while the others serve: their shards go on.
      if (failures.length > 0 && Date.now() - this.claimWarnedAt >= CLAIM_WARNING_GAP_MS) {
        this.claimWarnedAt = Date.now();
        this.deps.logger.warn({ shards: failures.length, err: describe(failures[0]) }, 'scheduler could not claim due work in some shards; retrying them next tick');
      }
      for (const { now, members, revocations } of claims) {
        for (const member of members) {
          if (this.dispatch(member, owner, now)) started++;
        }
        // A revocation left unstarted (no free worker) simply comes due again when its lease ends.
        for (const member of revocations) {
          if (this.free() > 0) {
            this.track(this.deps.revoker.runClaimed(member), { revocation: member }, () => undefined);
            started++;
          }
        }
      }
    }
    return started;
  }

  private free(): number {
    return this.deps.settings.workers - this.running;
  }

  private dispatch(member: string, owner: string, now: number): boolean {
    const { user, provider } = parseDueMember(member);
    const config = this.deps.providers.get(provider);
    const limit = config?.type === 'oauth2' ? config.maxConcurrency : 1;
    const inFlight = this.perProvider.get(provider) ?? 0;
    if (this.free() <= 0 || inFlight >= limit) {
      void this.deps.store.releaseLease(user, provider, owner).catch(() => undefined);
      return false;
    }
    this.perProvider.set(provider, inFlight + 1);
    this.track(this.deps.refresher.refreshClaimed(user, provider, owner, now), { user, provider }, () => this.perProvider.set(provider, (this.perProvider.get(provider) ?? 1) - 1));
    return true;
  }

  /** Runs claimed work on a worker; `done` undoes its own bookkeeping when it ends. */
  private track(task: Promise<unknown>, context: Record<string, string>, done: () => void): void {
    this.running++;
    const work = task
      .catch((err: unknown) => this.deps.logger.error({ ...context, err: describe(err) }, 'scheduled work failed unexpectedly'))
      .finally(() => {
        this.running--;
        done();
        this.active.delete(work);
        if (this.busy && !this.ticking) this.schedule(0);
      });
    this.active.add(work);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runTick(), delayMs);
    this.timer.unref();
  }

  private async runTick(): Promise<void> {
    if (this.stopped || this.ticking) return;
    this.ticking = this.tick().catch((err: unknown) => {
      this.deps.logger.warn({ err: describe(err) }, 'scheduler tick failed; retrying');
      return 0;
    });
    const started = await this.ticking;
    this.ticking = undefined;
    this.busy = started > 0;
    this.schedule(this.busy && this.free() > 0 ? 0 : this.deps.settings.pollMs);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
