import { createHash } from 'node:crypto';
import { parseCommandLine, type Command } from '../command';
import { EXIT_OK, UsageError, type Io } from '../io';

const CALLER_NAME = /^[A-Za-z0-9._-]{1,64}$/;

const usage = `Usage: token-vault apikey [--name NAME]

Makes a new random caller API key (tv_ + 43 base64url characters, 256 bits) and prints it,
its SHA-256 (hex), and a callers: entry that gives the vault only the SHA-256.
Hand the key to the calling service; it is not stored anywhere.

Options:
  --name NAME   the caller's name in the YAML snippet, ${CALLER_NAME.source} (default: my-service)
  -h, --help    this help

To rotate a caller's key, add the new sha256 beside the old one in its keys: list, deploy,
move the caller over, then remove the old one.`;

async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(argv, { name: { type: 'string' } }, usage);
  if (values.help) {
    io.stdout.write(`${usage}\n`);
    return EXIT_OK;
  }
  const name = values.name ?? 'my-service';
  if (!CALLER_NAME.test(name)) throw new UsageError(`--name: caller names match ${CALLER_NAME.source}`, usage);
  const key = `tv_${io.randomBytes(32).toString('base64url')}`;
  const sha256 = createHash('sha256').update(key).digest('hex');
  io.stdout.write(
    [
      `key:    ${key}`,
      `sha256: ${sha256}`,
      '',
      '# token-vault.yaml',
      'callers:',
      `  - name: ${name}`,
      `    keys: [{ sha256: "${sha256}" }]`,
      '    scopes: [tokens:read]            # tokens:read | tokens:write | tokens:sign | connect | admin',
      '    providers: ["*"]                 # or a list of provider ids',
      '',
    ].join('\n'),
  );
  io.stderr.write('token-vault: the key is shown only this once; the vault needs only its sha256\n');
  return EXIT_OK;
}

export const apikey: Command = { name: 'apikey', summary: 'make a caller API key and its sha256 for callers:', usage, run };
