import { UnavailableError } from '../errors';
import type { Keyring } from './keyring';

/**
 * The keyring in force on this replica, replaced whole on reload, and the KEK id all replicas
 * seal with (kept in Redis, DESIGN §6). New records are sealed under that shared id when this
 * replica holds it; otherwise under its own keyring's active key, which every replica that
 * shares the data also holds until it is retired.
 */
export class KeyringHolder {
  private shared: string | undefined;

  constructor(private keyring: Keyring | undefined) {}

  get(): Keyring | undefined {
    return this.keyring;
  }

  replace(keyring: Keyring): void {
    this.keyring = keyring;
  }

  /** The active KEK id read from Redis. */
  setSharedActive(id: string | undefined): void {
    this.shared = id;
  }

  sealingKekId(): string {
    const keyring = this.require();
    return this.shared !== undefined && keyring.has(this.shared) ? this.shared : keyring.activeId;
  }

  require(): Keyring {
    if (!this.keyring) throw new UnavailableError('no keyring is loaded', 5);
    return this.keyring;
  }
}
