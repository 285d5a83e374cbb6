import { z } from 'zod';
import { ADMIN_OPTIONS, ADMIN_OPTIONS_HELP, AdminClient } from '../admin-client';
import { parseCommandLine, type Command } from '../command';
import { EXIT_OK, UsageError, type Io } from '../io';

const usage = `Usage: token-vault keys [--url URL] [--key KEY]
       token-vault keys reload [--url URL] [--key KEY]

keys          GET /admin/keys: every key-encryption key with the records sealed under it,
              whether it is the active key, and the live replicas holding it.
keys reload   POST /admin/keys/reload: the replica that answers re-reads its keyring and
              prints the same table. A refusal (400, or 409 key_in_use with the keys still
              in use) is printed and exits 1; the old keyring stays in force. Each replica
              reloads on its own: behind a load balancer, use SIGHUP or the file watch.

Options:
${ADMIN_OPTIONS_HELP}
  -h, --help   this help`;

const keyStatus = z.object({
  active: z.string().nullable(),
  keys: z.array(z.object({ id: z.string(), records: z.number(), active: z.boolean(), replicas: z.array(z.string()) })),
});
type KeyStatus = z.infer<typeof keyStatus>;

async function run(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, ADMIN_OPTIONS, usage, true);
  if (values.help) {
    io.stdout.write(`${usage}\n`);
    return EXIT_OK;
  }
  const [action, ...rest] = positionals;
  if ((action !== undefined && action !== 'reload') || rest.length > 0) {
    throw new UsageError(`unknown keys action "${positionals.join(' ')}"; expected nothing or "reload"`, usage);
  }
  const client = AdminClient.fromOptions(values, io, usage);
  const status = action === 'reload' ? await client.post('/admin/keys/reload', keyStatus) : await client.get('/admin/keys', keyStatus);
  if (action === 'reload') io.stdout.write(`reloaded the keyring of the replica at ${client.baseUrl}\n`);
  io.stdout.write(formatStatus(status));
  return EXIT_OK;
}

export function formatStatus(status: KeyStatus): string {
  const rows = [
    ['ID', 'RECORDS', 'ACTIVE', 'REPLICAS'],
    ...status.keys.map((key) => [key.id, String(key.records), key.active ? 'yes' : 'no', key.replicas.length ? key.replicas.join(', ') : '-']),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, column) => (column === 1 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
  return `active key: ${status.active ?? '(none yet)'}\n${lines.join('\n')}\n`;
}

export const keys: Command = { name: 'keys', summary: 'list key-encryption keys (GET /admin/keys); keys reload', usage, run };
