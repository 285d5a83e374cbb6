import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { parseCommandLine, type Command } from '../command';
import { generateDevCertificates } from '../dev-certificates';
import { CliError, EXIT_FAILED, EXIT_OK, UsageError, type Io } from '../io';

const CALLER_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const DNS_NAME = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const DEFAULT_DIR = './.data/certs';
const DEFAULT_HOSTS = ['localhost', '127.0.0.1', '::1'];
// Apple platforms refuse server certificates valid for longer, even from a CA the user added.
const MAX_DAYS = 825;

const usage = `Usage: token-vault dev-certs [--dir DIR] [--host HOSTS] [--client NAME]... [--days N] [--force]

Makes certificates for trying TLS and mutual TLS locally (never for production):
  ca.pem                       a new CA; its private key is not kept
  server.pem, server-key.pem   the vault's certificate for the --host names (serverAuth)
  client-NAME.pem, client-NAME-key.pem
                               one per --client: subject CN=NAME (clientAuth), for a caller
                               with certSubject: "CN=NAME"
RSA 2048 keys, SHA-256 signatures; key files get mode 0600. Prints the server.tls and
callers: configuration to paste into token-vault.yaml, and curl commands to try it.
Existing files are never replaced without --force.

Options:
  --dir DIR       where to write (default ${DEFAULT_DIR}; created with mode 0700)
  --host HOSTS    DNS names and IP addresses for the server certificate, comma-separated,
                  repeatable (default ${DEFAULT_HOSTS.join(',')})
  --client NAME   a client certificate for the caller NAME, ${CALLER_NAME.source}; repeatable
  --days N        how long the certificates are valid, 1 to ${MAX_DAYS} days (default 365)
  --force         replace existing files: a new CA, so certificates made before stop working
  -h, --help      this help

The token-vault CLI itself talks to an https vault with TOKEN_VAULT_URL=https://...,
TOKEN_VAULT_CA=DIR/ca.pem and, under mTLS, TOKEN_VAULT_CLIENT_CERT / TOKEN_VAULT_CLIENT_KEY.`;

async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parseCommandLine(
    argv,
    {
      dir: { type: 'string' },
      host: { type: 'string', multiple: true },
      client: { type: 'string', multiple: true },
      days: { type: 'string' },
      force: { type: 'boolean' },
    },
    usage,
  );
  if (values.help) {
    io.stdout.write(`${usage}\n`);
    return EXIT_OK;
  }
  const hosts = values.host ? values.host.flatMap((list) => list.split(',')).map((host) => host.trim()).filter((host) => host !== '') : DEFAULT_HOSTS;
  if (hosts.length === 0) throw new UsageError('--host: give at least one DNS name or IP address', usage);
  for (const host of hosts) {
    if (isIP(host) === 0 && !DNS_NAME.test(host)) throw new UsageError(`--host: "${host}" is neither a DNS name nor an IP address`, usage);
  }
  const clients = values.client ?? [];
  for (const name of clients) {
    if (!CALLER_NAME.test(name)) throw new UsageError(`--client: "${name}" is not a caller name; caller names match ${CALLER_NAME.source}`, usage);
  }
  const duplicate = clients.find((name, i) => clients.indexOf(name) !== i);
  if (duplicate !== undefined) throw new UsageError(`--client: "${duplicate}" is given twice`, usage);
  const days = values.days === undefined ? 365 : Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) throw new UsageError(`--days: must be a whole number from 1 to ${MAX_DAYS}`, usage);

  const dir = resolve(io.cwd, values.dir ?? DEFAULT_DIR);
  const files = {
    ca: join(dir, 'ca.pem'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server-key.pem'),
    clients: clients.map((name) => ({ name, cert: join(dir, `client-${name}.pem`), key: join(dir, `client-${name}-key.pem`) })),
  };
  const targets = [files.ca, files.cert, files.key, ...files.clients.flatMap((client) => [client.cert, client.key])];
  const existing = targets.filter(exists);
  if (existing.length > 0 && !values.force) {
    throw new CliError(
      'refusing to replace existing files; pass --force to replace them (a new CA: certificates made before stop working)',
      EXIT_FAILED,
      existing.map((file) => `  - ${file}`),
    );
  }

  const issued = generateDevCertificates({ hosts, clients, days, now: io.now(), randomBytes: io.randomBytes });
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const write = (file: string, content: string, mode: number) => {
      writeFileAtomic(file, content, mode, io.randomBytes);
      chmodSync(file, mode); // whatever the umask did
    };
    write(files.ca, issued.ca.certPem, 0o644);
    write(files.cert, issued.server.certPem, 0o644);
    write(files.key, issued.server.keyPem, 0o600);
    issued.clients.forEach((client, i) => {
      write(files.clients[i]!.cert, client.certPem, 0o644);
      write(files.clients[i]!.key, client.keyPem, 0o600);
    });
  } catch (err) {
    throw new CliError(`cannot write the certificates to ${dir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }

  const file = (path: string) => `{ file: ${JSON.stringify(path)} }`;
  const origin = `https://${isIP(hosts[0]!) === 6 ? `[${hosts[0]}]` : hosts[0]}:8080`;
  const lines = [
    `made a CA (${issued.ca.subject}), a server certificate for ${hosts.join(', ')}${clients.length ? ` and client certificates for ${clients.join(', ')}` : ''}, valid ${days} days, in ${dir}`,
    '',
    '# token-vault.yaml',
    'server:',
    '  tls:',
    `    cert: ${file(files.cert)}`,
    `    key: ${file(files.key)}`,
  ];
  if (clients.length > 0) {
    lines.push(
      `    ca: ${file(files.ca)}   # verifies client certificates`,
      '    requireClientCert: false   # true: the handshake refuses clients without a certificate from ca',
      'callers:',
      ...clients.flatMap((name) => [
        `  - name: ${name}`,
        `    certSubject: "CN=${name}"`,
        '    scopes: [tokens:read]            # tokens:read | tokens:write | tokens:sign | connect | admin',
        '    providers: ["*"]',
      ]),
    );
  }
  lines.push('', `# try it (the vault on its default port 8080):`, `#   curl --cacert ${files.ca} ${origin}/healthz`);
  const first = files.clients[0];
  if (first) lines.push(`#   curl --cacert ${files.ca} --cert ${first.cert} --key ${first.key} ${origin}/tokens/u1/github`);
  io.stdout.write(`${lines.join('\n')}\n`);
  io.stderr.write('token-vault: these certificates are for local use only; the CA private key was not kept\n');
  return EXIT_OK;
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export const devCerts: Command = { name: 'dev-certs', summary: 'make a local CA, server and client certificates for TLS/mTLS', usage, run };
