import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * A string that must never be logged or serialised by accident: JSON.stringify, template
 * strings, util.inspect and pino all see "[redacted]". Only `reveal()` gives the value, so every
 * place that really needs it is easy to find.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }
}
