import { ConfigError, findConfigFile, loadConfig } from '../../config/load';
import { parseCommandLine, type Command } from '../command';
import { CliError, EXIT_FAILED, EXIT_OK, UsageError, type Io } from '../io';

const usage = `Usage: token-vault check-config [FILE]

Validates a configuration exactly as the vault does at start-up: the YAML, every field, the
environment overrides (PORT, HOST, REDIS_URL, TOKEN_VAULT_KEYRING, LOG_LEVEL), the { env } and
{ file } secret references and the keyring. NODE_ENV=production applies the production rules.
Prints "ok" and any warnings, or every problem with the path of its field and exits 1.
Secret values are never printed.

FILE defaults to the vault's own lookup: $TOKEN_VAULT_CONFIG, ./token-vault.yaml, and in
development ./token-vault.example.yaml.

Options:
  -h, --help   this help`;

async function run(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, {}, usage, true);
  if (values.help) {
    io.stdout.write(`${usage}\n`);
    return EXIT_OK;
  }
  if (positionals.length > 1) throw new UsageError(`expected at most one FILE, got ${positionals.length}`, usage);
  const env = positionals[0] === undefined ? io.env : { ...io.env, TOKEN_VAULT_CONFIG: positionals[0] };
  const mode = env.NODE_ENV === 'production' ? 'production' : 'development';
  try {
    const loaded = loadConfig({ env, cwd: io.cwd });
    const where = loaded.path ?? 'no configuration file (defaults and environment only)';
    io.stdout.write(`ok: ${where} (${loaded.mode} mode)\n`);
    for (const warning of loaded.warnings) io.stdout.write(`warning: ${warning}\n`);
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const where = findConfigFile(env, io.cwd, mode) ?? 'the configuration (no file: defaults and environment only)';
    throw new CliError(
      `invalid configuration in ${where} (${mode} mode):`,
      EXIT_FAILED,
      err.issues.map((issue) => `  - ${issue}`),
    );
  }
}

export const checkConfig: Command = { name: 'check-config', summary: 'validate a configuration file as the vault would at start-up', usage, run };
