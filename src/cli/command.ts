import { parseArgs } from 'node:util';
import { UsageError, type Io } from './io';

/** One `token-vault <name>` command. `run` answers the exit status or throws a CliError. */
export interface Command {
  name: string;
  /** One line, for the list of commands. */
  summary: string;
  /** The whole `--help` text. */
  usage: string;
  run(argv: string[], io: Io): Promise<number>;
}

type ParseConfig = NonNullable<Parameters<typeof parseArgs>[0]>;

/**
 * node:util parseArgs, strict, with its errors turned into a UsageError that carries the
 * command's usage. Every command gets -h/--help.
 */
export function parseCommandLine<const O extends NonNullable<ParseConfig['options']>>(argv: string[], options: O, usage: string, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (!code.startsWith('ERR_PARSE_ARGS_')) throw err;
    // Node's messages go on with advice about `--`; the first sentence is what matters here.
    throw new UsageError((err as Error).message.split('. ')[0]!.replace(/\.$/, ''), usage);
  }
}
