#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from './command';
import { apikey } from './commands/apikey';
import { checkConfig } from './commands/check-config';
import { devCerts } from './commands/dev-certs';
import { keygen } from './commands/keygen';
import { keys } from './commands/keys';
import { rewrap } from './commands/rewrap';
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_USAGE, processIo, UsageError, type Io } from './io';

/**
 * The token-vault command: operators' tools around a running vault (keys, rewrap) and around
 * its files (keygen, apikey, check-config, dev-certs). Exit statuses: 0 ok, 1 failed or
 * refused, 2 wrong command line.
 */
const COMMANDS: Command[] = [keygen, apikey, keys, rewrap, checkConfig, devCerts];

const usage = `Usage: token-vault <command> [options]

Commands:
${COMMANDS.map((command) => `  ${command.name.padEnd(13)} ${command.summary}`).join('\n')}

Run \`token-vault <command> --help\` for a command's options.

Environment:
  TOKEN_VAULT_URL        the vault for keys and rewrap (default http://127.0.0.1:8080)
  TOKEN_VAULT_ADMIN_KEY  an API key with the admin scope, for keys and rewrap
  TOKEN_VAULT_CA         PEM file of the CA that signed an https vault's certificate
                         (default: the system's trusted CAs)
  TOKEN_VAULT_CLIENT_CERT, TOKEN_VAULT_CLIENT_KEY
                         PEM files of a client certificate and its key, for a vault that
                         asks for one (mTLS); with a certificate whose subject is a caller
                         with the admin scope, TOKEN_VAULT_ADMIN_KEY may be left unset
  TOKEN_VAULT_CONFIG     the configuration file check-config reads by default
  NODE_ENV               production: check-config applies the production rules`;

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(`${usage}\n`);
    return EXIT_USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const command = rest[0] === undefined ? undefined : COMMANDS.find((c) => c.name === rest[0]);
    io.stdout.write(`${command ? command.usage : usage}\n`);
    return EXIT_OK;
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`${version()}\n`);
    return EXIT_OK;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr.write(`token-vault: unknown command "${name}"\n\n${usage}\n`);
    return EXIT_USAGE;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (!(err instanceof CliError)) {
      io.stderr.write(`token-vault ${command.name}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      return EXIT_FAILED;
    }
    io.stderr.write(`token-vault ${command.name}: ${err.message}\n`);
    for (const line of err.lines) io.stderr.write(`${line}\n`);
    // The synopsis (the usage up to its first blank line), not the whole help.
    if (err instanceof UsageError) io.stderr.write(`\n${err.usage.split('\n\n')[0]}\nRun \`token-vault ${command.name} --help\` for more.\n`);
    return err.exitCode;
  }
}

function version(): string {
  try {
    // ../../package.json from both src/cli/ and dist/cli/.
    return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

if (require.main === module) {
  void main(process.argv.slice(2), processIo()).then((code) => {
    process.exitCode = code;
  });
}
