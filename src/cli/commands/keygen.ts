import { chmodSync, readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { KEK_BYTES, KEK_ID, keyringSchema, type KeyringJson } from '../../crypto/keyring';
import { writeFileAtomic } from '../atomic-file';
import { parseCommandLine, type Command } from '../command';
import { CliError, EXIT_OK, UsageError, type Io } from '../io';

const usage = `Usage: token-vault keygen [--id ID] [--keyring FILE [--activate]]

Makes a new key-encryption key (32 random bytes).

Without --keyring, prints the key entry as JSON: {"id": "...", "key": "<base64>"}.
With --keyring FILE, adds the key to that keyring file instead and prints
{"id", "keyring", "active", "created"} (the key material goes only to the file):
  - a missing file is created holding only this key, as the active key;
  - otherwise the key is added and "active" is left alone, unless --activate.
The file is replaced atomically (temp file + rename) with mode 0600.

Options:
  --id ID          key id, ^[A-Za-z0-9_-]{1,32}$ (default: k + UTC time, e.g. k20261123T1200);
                   an id already in the keyring is refused
  --keyring FILE   the keyring file to create or add to
  --activate       make the new key the keyring's active key
  -h, --help       this help

Activating a key in a running vault: see "Adding and activating a key" in the README.`;

/** k + UTC yyyymmddThhmm: sorts by age and says when the key was made. */
export function defaultKeyId(now: Date): string {
  const iso = now.toISOString(); // 2026-11-23T12:00:00.000Z
  return `k${iso.slice(0, 10).replaceAll('-', '')}T${iso.slice(11, 16).replace(':', '')}`;
}

async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(argv, { id: { type: 'string' }, keyring: { type: 'string' }, activate: { type: 'boolean' } }, usage);
  if (values.help) {
    io.stdout.write(`${usage}\n`);
    return EXIT_OK;
  }
  const id = values.id ?? defaultKeyId(io.now());
  if (!KEK_ID.test(id)) throw new UsageError(`--id: "${id}" is not a valid key id; key ids match ${KEK_ID.source}`, usage);
  if (values.activate && !values.keyring) throw new UsageError('--activate needs --keyring', usage);
  const key = io.randomBytes(KEK_BYTES).toString('base64');

  if (!values.keyring) {
    io.stdout.write(`${JSON.stringify({ id, key })}\n`);
    return EXIT_OK;
  }

  const requested = resolve(io.cwd, values.keyring);
  const existing = readKeyringFile(requested);
  // Follow a symlink so the file it points at is updated, not replaced by a plain file.
  const file = existing ? realpathSync(requested) : requested;
  let ring: KeyringJson;
  if (!existing) {
    ring = { active: id, keys: { [id]: key } };
  } else {
    if (id in existing.keys) throw new CliError(`${requested} already holds a key "${id}"; choose another --id`);
    ring = { active: values.activate ? id : existing.active, keys: { ...existing.keys, [id]: key } };
  }
  try {
    writeFileAtomic(file, `${JSON.stringify(ring, null, 2)}\n`, 0o600, io.randomBytes);
    chmodSync(file, 0o600); // whatever the umask did
  } catch (err) {
    throw new CliError(`cannot write ${requested} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  io.stdout.write(`${JSON.stringify({ id, keyring: requested, active: ring.active, created: !existing })}\n`);
  if (existing && ring.active !== id) {
    io.stderr.write(`token-vault: added key "${id}" to ${requested}; the active key is still "${ring.active}" (use --activate to make it "${id}")\n`);
  }
  return EXIT_OK;
}

/** The keyring JSON in `path`, undefined when there is no file; a file that is not a valid keyring is refused, never overwritten. */
function readKeyringFile(path: string): KeyringJson | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON; it was left unchanged`);
  }
  const parsed = keyringSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.map(String).join('.')}: ` : '';
    throw new CliError(`${path} is not a valid keyring (${where}${issue?.message ?? 'invalid'}); it was left unchanged`);
  }
  return parsed.data;
}

export const keygen: Command = { name: 'keygen', summary: 'make a key-encryption key, or add one to a keyring file', usage, run };
