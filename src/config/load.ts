import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { Keyring, KeyringError } from '../crypto/keyring';
import { tlsCertificateWarnings } from '../tls/tls-material';
import { buildConfigSchema, ConfigSecret, type CallerKeyHash, type Config, type SecretSource } from './schema';

export type Mode = 'production' | 'development';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoadedConfig {
  mode: Mode;
  /** The file the configuration came from, if any. */
  path: string | undefined;
  config: Config & { server: Config['server'] & { host: string } };
  /** Absent only in development, where dev mode generates one. */
  keyring: Keyring | undefined;
  /** Where the keyring came from, so a reload (SIGHUP, /admin/keys/reload) can read it again. */
  keyringSource: KeyringSource | undefined;
  logLevel: LogLevel;
  bodyLimitBytes: number;
  /** Things an operator should see at start-up; the config is still usable. */
  warnings: string[];
}

export type KeyringSource = { kind: 'file'; path: string } | { kind: 'env'; name: string } | { kind: 'inline' };

/** Reads a keyring from its source again; throws KeyringError (or an fs error) when it cannot. */
export function readKeyring(source: KeyringSource, env: NodeJS.ProcessEnv = process.env): Keyring {
  if (source.kind === 'file') return Keyring.parse(readFileSync(source.path, 'utf8'));
  if (source.kind === 'env') {
    const value = env[source.name];
    if (!value) throw new KeyringError(`environment variable ${source.name} is not set`);
    return Keyring.parse(value);
  }
  throw new KeyringError('an inline keyring cannot be re-read; use { file } or { env }');
}

/** A configuration that cannot be used; `issues` name the path of each bad field. */
export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration:\n${issues.map((issue) => `  - ${issue}`).join('\n')}`);
  }
}

export interface LoadOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Reads files; injected by tests. */
  readFile?: (path: string) => string;
}

export const DEFAULT_CONFIG_FILE = 'token-vault.yaml';
export const EXAMPLE_CONFIG_FILE = 'token-vault.example.yaml';

/** Where the configuration comes from: TOKEN_VAULT_CONFIG, ./token-vault.yaml, or in dev the example. */
export function findConfigFile(env: NodeJS.ProcessEnv, cwd: string, mode: Mode): string | undefined {
  if (env.TOKEN_VAULT_CONFIG) return resolve(cwd, env.TOKEN_VAULT_CONFIG);
  const local = resolve(cwd, DEFAULT_CONFIG_FILE);
  if (existsSync(local)) return local;
  const example = resolve(cwd, EXAMPLE_CONFIG_FILE);
  if (mode === 'development' && existsSync(example)) return example;
  return undefined;
}

export function loadConfig(options: LoadOptions): LoadedConfig {
  const { env, cwd } = options;
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const mode: Mode = env.NODE_ENV === 'production' ? 'production' : 'development';
  const path = findConfigFile(env, cwd, mode);
  const raw = path ? readYaml(path, readFile) : {};
  return resolveConfig(raw, { env, mode, path, baseDir: path ? dirname(path) : cwd, cwd, readFile });
}

export interface ResolveOptions {
  env: NodeJS.ProcessEnv;
  mode: Mode;
  path?: string;
  /** Relative `{ file }` references are read from here. */
  baseDir: string;
  /** A relative TOKEN_VAULT_KEYRING path is read from here (default: the process's). */
  cwd?: string;
  readFile?: (path: string) => string;
}

/** Validates a parsed configuration (the YAML's content) with the environment's overrides. */
export function resolveConfig(raw: Record<string, unknown>, options: ResolveOptions): LoadedConfig {
  const { env, mode, path, baseDir } = options;
  const readFile = options.readFile ?? ((file: string) => readFileSync(file, 'utf8'));
  const warnings: string[] = [];
  const issues: string[] = [];

  raw = structuredClone(raw);
  const redisEnvIssues = redisUrlOverrideIssues(raw, env);
  applyEnvOverrides(raw, env, options.cwd ?? process.cwd());

  const source: SecretSource = {
    env: (name) => env[name],
    file: (file) => readFile(isAbsolute(file) ? file : resolve(baseDir, file)),
  };
  const keyringSource = keyringSourceOf(raw.keyring, baseDir);
  const parsed = buildConfigSchema(source).safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError([...redisEnvIssues, ...parsed.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`)]);
  }
  const config = parsed.data;

  let keyring: Keyring | undefined;
  if (config.keyring) {
    try {
      keyring = Keyring.parse(config.keyring.reveal());
    } catch (err) {
      if (!(err instanceof KeyringError)) throw err;
      issues.push(`keyring${err.field ? `.${err.field}` : ''}: ${err.reason}`);
    }
  }

  const logLevel = (env.LOG_LEVEL || 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    issues.push(`LOG_LEVEL: must be one of ${LOG_LEVELS.join(', ')}`);
  }

  // Settings whose absence would weaken security are refused rather than ignored.
  issues.push(...redisEnvIssues);

  if (mode === 'production') {
    if (!config.keyring) issues.push('keyring: production mode needs a keyring (keyring: { file: ... } or TOKEN_VAULT_KEYRING)');
    if (config.callers.length === 0) issues.push('callers: production mode needs at least one caller with an API key');
    for (const [where, url] of configuredUrls(config)) {
      if (new URL(url).protocol === 'http:' && !isLoopbackUrl(url)) issues.push(`${where}: http:// is only allowed for loopback hosts in production`);
    }
    const inline = inlineSecretPaths(config);
    if (inline.length > 0) warnings.push(`inline secrets in the configuration (use { env } or { file }): ${inline.join(', ')}`);
  }
  warnings.push(...inertSettings(raw));
  if (config.server.tls) warnings.push(...tlsCertificateWarnings(config.server.tls.cert, new Date()));

  if (issues.length > 0) throw new ConfigError(issues);

  const host = config.server.host ?? (mode === 'production' ? '0.0.0.0' : '127.0.0.1');
  // Dev mode builds callback URLs from where it listens; production must say where it is reached.
  const localHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  // Callbacks reach the public-routes port when there is one.
  const localUrl = `${config.server.tls ? 'https' : 'http'}://${localHost}:${config.server.publicPort ?? config.server.port}`;
  const publicUrl = config.server.publicUrl ?? (mode === 'development' ? localUrl : undefined);
  return {
    mode,
    path,
    config: { ...config, server: { ...config.server, host, ...(publicUrl ? { publicUrl } : {}) } },
    keyring,
    keyringSource,
    logLevel: logLevel as LogLevel,
    bodyLimitBytes: config.server.bodyLimit,
    warnings,
  };
}

function readYaml(path: string, readFile: (path: string) => string): Record<string, unknown> {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    throw new ConfigError([`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `${path}: ${e.message.split('\n')[0]}`));
  }
  const value: unknown = doc.toJS() ?? {};
  if (typeof value !== 'object' || Array.isArray(value) || value === null) {
    throw new ConfigError([`${path}: the top level must be a mapping`]);
  }
  return value as Record<string, unknown>;
}

/** PORT, HOST, REDIS_URL and TOKEN_VAULT_KEYRING win over the file (DESIGN §3). */
function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, cwd: string): void {
  const section = (name: string): Record<string, unknown> => {
    const current = raw[name];
    if (typeof current === 'object' && current !== null && !Array.isArray(current)) return current as Record<string, unknown>;
    const created: Record<string, unknown> = {};
    raw[name] = created;
    return created;
  };
  if (env.PORT) section('server').port = env.PORT;
  if (env.HOST) section('server').host = env.HOST;
  if (env.REDIS_URL && redisTopologyField(raw) === undefined) section('redis').url = { env: 'REDIS_URL' };
  const keyring = env.TOKEN_VAULT_KEYRING?.trim();
  if (keyring) raw.keyring = keyring.startsWith('{') ? { env: 'TOKEN_VAULT_KEYRING' } : { file: resolve(cwd, keyring) };
  // An inline keyring object (handy in tests) is the same JSON as a keyring file.
  if (typeof raw.keyring === 'object' && raw.keyring !== null && 'keys' in raw.keyring) {
    raw.keyring = JSON.stringify(raw.keyring);
  }
}

/** `cluster` or `sentinel` when the file chose one of them instead of a single Redis URL. */
function redisTopologyField(raw: Record<string, unknown>): 'cluster' | 'sentinel' | undefined {
  const redis = raw.redis;
  return isMapping(redis) ? (['cluster', 'sentinel'] as const).find((field) => redis[field] !== undefined) : undefined;
}

/**
 * REDIS_URL replaces redis.url only. Next to a cluster or sentinels in the file it is refused,
 * not ignored: a vault an operator believes to be on one Redis while it uses another is worse
 * than one that does not start.
 */
function redisUrlOverrideIssues(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): string[] {
  const field = redisTopologyField(raw);
  if (!env.REDIS_URL || field === undefined) return [];
  return [
    `REDIS_URL: is set, but the configuration uses redis.${field}, and REDIS_URL replaces redis.url only; unset REDIS_URL` +
      (field === 'cluster' ? ', or give the seed nodes as redis.cluster: { env: NAME } (several URLs separated by commas)' : ''),
  ];
}

function keyringSourceOf(value: unknown, baseDir: string): KeyringSource | undefined {
  if (typeof value === 'string') return { kind: 'inline' };
  if (isMapping(value) && typeof value.file === 'string') return { kind: 'file', path: isAbsolute(value.file) ? value.file : resolve(baseDir, value.file) };
  if (isMapping(value) && typeof value.env === 'string') return { kind: 'env', name: value.env };
  return undefined;
}

function formatPath(path: PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`)).join('');
}

function* configuredUrls(config: Config): Generator<[string, string]> {
  for (const [id, provider] of Object.entries(config.providers)) {
    for (const [field, value] of Object.entries(provider)) {
      if (field.endsWith('Url') && typeof value === 'string') yield [`providers.${id}.${field}`, value];
    }
  }
  for (const [i, subscriber] of (config.webhooks?.subscribers ?? []).entries()) {
    yield [`webhooks.subscribers[${i}].url`, subscriber.url];
  }
}

export function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function inlineSecretPaths(config: Config): string[] {
  const found: string[] = [];
  const walk = (value: unknown, path: string): void => {
    if (value instanceof ConfigSecret) {
      if (value.origin === 'inline') found.push(path);
    } else if (isCallerKey(value)) {
      if (value.origin === 'inline') found.push(path);
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => walk(item, `${path}[${i}]`));
    } else if (typeof value === 'object' && value !== null && !Buffer.isBuffer(value)) {
      for (const [key, item] of Object.entries(value)) walk(item, path ? `${path}.${key}` : key);
    }
  };
  walk(config, '');
  return found;
}

function isCallerKey(value: unknown): value is CallerKeyHash {
  return typeof value === 'object' && value !== null && Buffer.isBuffer((value as CallerKeyHash).sha256);
}

/**
 * Settings the schema accepts (so a DESIGN §3 file loads) but this version does not act on yet,
 * among those an operator may rely on for safety or for something to happen. Read from the raw
 * file, so defaults do not count as set.
 */
const INERT_PATHS: string[] = [];
const INERT_PROVIDER_FIELDS: string[] = [];

function inertSettings(raw: Record<string, unknown>): string[] {
  const at = (path: string): unknown =>
    path.split('.').reduce<unknown>((value, key) => (isMapping(value) ? value[key] : undefined), raw);
  const inert = INERT_PATHS.filter((path) => at(path) !== undefined);
  const providers = raw.providers;
  if (isMapping(providers)) {
    for (const [id, provider] of Object.entries(providers)) {
      if (!isMapping(provider)) continue;
      inert.push(...INERT_PROVIDER_FIELDS.filter((field) => provider[field] !== undefined).map((field) => `providers.${id}.${field}`));
    }
  }
  return inert.length > 0 ? [`these settings are accepted but have no effect in this version yet: ${inert.join(', ')}`] : [];
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
