import { createHash } from 'node:crypto';
import { z } from 'zod';
import { WEBHOOK_EVENT_TYPES } from '../events/event-bus';
import { applyPreset } from '../providers/catalog';
import { Secret } from '../secret';
import { buildRedisSchema } from './redis-schema';
import { DistinguishedName, DistinguishedNameError } from '../tls/distinguished-name';
import { checkTlsMaterial } from '../tls/tls-material';
import { matchesAnyEvent, STANDARD_RETRY_SCHEDULE } from '../webhooks/outbound/subscribers';
import { webhookSecretBytes } from '../webhooks/outbound/signer';

/**
 * The configuration file of DESIGN §3. Secret fields take an inline string, `{ env: NAME }` or
 * `{ file: /path }`; they are resolved while parsing, so a missing variable or file is reported
 * with the path of the field that names it. Objects are strict: a misspelt key is an error, not a
 * silently ignored setting.
 */
export const PROVIDER_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const SCOPES = ['tokens:read', 'tokens:write', 'tokens:sign', 'connect', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export type SecretOrigin = 'inline' | 'env' | 'file';

/** A secret from the configuration, remembering where it came from (inline ones are warned about). */
export class ConfigSecret extends Secret {
  constructor(
    value: string,
    readonly origin: SecretOrigin,
  ) {
    super(value);
  }
}

/** Reads `{ env }` and `{ file }` references; injected so tests need no real environment. */
export interface SecretSource {
  env(name: string): string | undefined;
  file(path: string): string;
}

/** What a caller key becomes: only its SHA-256 is kept. */
export interface CallerKeyHash {
  sha256: Buffer;
  origin: SecretOrigin | 'sha256';
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_REF_HELP = 'must be a string, { env: NAME } or { file: /path }';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One-element-or-list fields: `clientSecret: x` and `clientSecret: [x, y]` both become lists. */
function oneOrMany<T extends z.ZodType>(item: T) {
  // preprocess, not a union: a union would hide the item's own message ("variable X is not set").
  return z.preprocess((value) => (Array.isArray(value) ? value : [value]), z.array(item).min(1));
}

const BYTE_SIZE = /^(\d+)\s*(b|kb|mb)?$/i;

function byteSize(value: string): number {
  const [, amount, unit = 'b'] = BYTE_SIZE.exec(value.trim()) ?? [];
  return Number(amount) * ({ b: 1, kb: 1024, mb: 1024 * 1024 } as Record<string, number>)[unit.toLowerCase()]!;
}

export function buildConfigSchema(source: SecretSource) {
  function resolveRef(ref: unknown, ctx: z.RefinementCtx, allowSha256: boolean): ConfigSecret | CallerKeyHash | undefined {
    const fail = (message: string) => {
      ctx.issues.push({ code: 'custom', message, input: undefined });
      return undefined;
    };
    if (typeof ref === 'string') return ref.length > 0 ? new ConfigSecret(ref, 'inline') : fail('must not be empty');
    if (!isRecord(ref) || Object.keys(ref).length !== 1) {
      return fail(allowSha256 ? 'must be a string, { env: NAME }, { file: /path } or { sha256: <hex> }' : SECRET_REF_HELP);
    }
    if (typeof ref.env === 'string') {
      if (!ENV_NAME.test(ref.env)) return fail(`env: "${ref.env}" is not a valid variable name`);
      const value = source.env(ref.env);
      if (value === undefined || value === '') return fail(`environment variable ${ref.env} is not set`);
      return new ConfigSecret(value, 'env');
    }
    if (typeof ref.file === 'string') {
      let value: string;
      try {
        value = source.file(ref.file).replace(/\r?\n$/, '');
      } catch (err) {
        return fail(`cannot read file ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      return value.length > 0 ? new ConfigSecret(value, 'file') : fail(`file ${ref.file} is empty`);
    }
    if (allowSha256 && typeof ref.sha256 === 'string') {
      if (!/^[0-9a-fA-F]{64}$/.test(ref.sha256)) return fail('sha256 must be 64 hex characters');
      return { sha256: Buffer.from(ref.sha256, 'hex'), origin: 'sha256' };
    }
    return fail(allowSha256 ? 'must be a string, { env: NAME }, { file: /path } or { sha256: <hex> }' : SECRET_REF_HELP);
  }

  const secret = z.unknown().transform((ref, ctx) => (resolveRef(ref, ctx, false) as ConfigSecret | undefined) ?? z.NEVER);

  const callerKey = z.unknown().transform((ref, ctx): CallerKeyHash => {
    const resolved = resolveRef(ref, ctx, true);
    if (resolved === undefined) return z.NEVER;
    if (resolved instanceof ConfigSecret) {
      return { sha256: createHash('sha256').update(resolved.reveal()).digest(), origin: resolved.origin };
    }
    return resolved as CallerKeyHash;
  });

  const url = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
  const port = z.preprocess(
    (value) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value),
    z.number({ error: 'must be a port number' }).int().min(0).max(65535),
  );
  const seconds = z.number().int().min(0);

  // One `secret` or a list of `secrets` (a webhook secret being rotated at the provider).
  const inboundWebhook = z
    .strictObject({
      verifier: z.enum(['generic', 'github', 'slack']).default('generic'),
      secret: secret.optional(),
      secrets: z.array(secret).min(1).optional(),
      toleranceSeconds: z.number().int().min(1).max(3600).default(300),
    })
    .refine((w) => (w.secret === undefined) !== (w.secrets === undefined), {
      message: 'give exactly one of secret or secrets',
      path: ['secrets'],
    })
    .transform(({ secret, secrets, ...rest }) => ({ ...rest, secrets: secrets ?? (secret ? [secret] : []) }));

  const providerBase = {
    preset: z.string().optional(),
    inboundWebhook: inboundWebhook.optional(),
  };

  const oauth2Provider = z.strictObject({
    ...providerBase,
    type: z.literal('oauth2'),
    grant: z.enum(['authorization_code', 'client_credentials']).default('authorization_code'),
    clientId: z.string().min(1),
    clientSecret: oneOrMany(secret),
    clientAuth: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
    tokenUrl: url,
    revocationUrl: url.optional(),
    authorizationUrl: url.optional(),
    deviceAuthorizationUrl: url.optional(),
    userinfoUrl: url.optional(),
    /** Where the account id is in the userinfo answer. */
    accountIdField: z.string().min(1).default('sub'),
    scopes: z.array(z.string().min(1)).default([]),
    scopeSeparator: z.enum([' ', ',']).default(' '),
    /** Extra parameters of the authorization URL (Google's access_type=offline). */
    authorizationParams: z.record(z.string(), z.string()).default({}),
    pkce: z.boolean().default(true),
    defaultLifetimeSeconds: z.number().int().min(60).default(3600),
    /** For refresh tokens that expire without the token answer saying when. */
    refreshTokenLifetimeSeconds: z.number().int().min(60).optional(),
    maxConcurrency: z.number().int().min(1).max(1024).default(16),
  });

  const oauth1Provider = z
    .strictObject({
      ...providerBase,
      type: z.literal('oauth1'),
      consumerKey: z.string().min(1),
      consumerSecret: secret,
      signatureMethod: z.enum(['HMAC-SHA1', 'HMAC-SHA256', 'RSA-SHA1', 'PLAINTEXT']).default('HMAC-SHA1'),
      privateKey: secret.optional(),
      includeVersion: z.boolean().default(true),
      signOnly: z.boolean().default(false),
      requestTokenUrl: url.optional(),
      authorizeUrl: url.optional(),
      accessTokenUrl: url.optional(),
      /** Extra parameters of the authorize URL (Trello's name, scope and expiration). */
      authorizeParams: z.record(z.string(), z.string()).default({}),
      /** Which access-token answer field is the account id (Twitter's user_id). */
      accountIdField: z.string().min(1).optional(),
    })
    .refine((p) => p.signatureMethod !== 'RSA-SHA1' || p.privateKey !== undefined, {
      message: 'RSA-SHA1 needs privateKey',
      path: ['privateKey'],
    })
    // A PLAINTEXT signature is the secrets themselves: it would hand them to every caller.
    .refine((p) => !(p.signOnly && p.signatureMethod === 'PLAINTEXT'), {
      message: 'a signOnly provider cannot use PLAINTEXT: its signatures contain the token secret',
      path: ['signatureMethod'],
    });

  // `preset: google` fills in what the catalog knows before the entry is checked.
  const provider = z.preprocess(
    (entry, ctx) => {
      if (!isRecord(entry)) return entry;
      const applied = applyPreset(entry);
      for (const issue of applied.issues) ctx.issues.push({ code: 'custom', message: issue.message, path: issue.path, input: entry });
      return applied.entry;
    },
    z.discriminatedUnion('type', [oauth2Provider, oauth1Provider], {
      error: 'type must be "oauth2" or "oauth1"',
    }),
  );

  // A caller is identified by API keys, by a client certificate's subject under mTLS, or both.
  const certSubject = z.string().transform((text, ctx) => {
    try {
      return DistinguishedName.parse(text);
    } catch (err) {
      if (!(err instanceof DistinguishedNameError)) throw err;
      ctx.issues.push({ code: 'custom', message: `not a distinguished name such as "CN=billing": ${err.message}`, input: text });
      return z.NEVER;
    }
  });

  const caller = z
    .strictObject({
      name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'caller names match ^[A-Za-z0-9._-]{1,64}$'),
      key: callerKey.optional(),
      keys: z.array(callerKey).min(1).optional(),
      certSubject: certSubject.optional(),
      scopes: z.array(z.enum(SCOPES)).min(1),
      providers: z.array(z.union([z.literal('*'), z.string().regex(PROVIDER_ID, 'not a valid provider id')])).min(1),
    })
    .refine((c) => !(c.key !== undefined && c.keys !== undefined), {
      message: 'give one of key or keys, not both',
      path: ['keys'],
    })
    .refine((c) => c.key !== undefined || c.keys !== undefined || c.certSubject !== undefined, {
      message: 'give key or keys (API keys), certSubject (a client certificate under mTLS), or both',
      path: ['keys'],
    })
    .transform(({ key, keys, ...rest }) => ({ ...rest, keys: keys ?? (key ? [key] : []) }));

  // Certificates are public: kept as plain PEM text. Only the private key is a Secret.
  const pem = secret.transform((value) => value.reveal());
  const tls = z
    .strictObject({
      cert: pem,
      key: secret,
      ca: pem.optional(),
      requireClientCert: z.boolean().default(false),
    })
    .superRefine((tls, ctx) => {
      for (const issue of checkTlsMaterial(tls)) ctx.addIssue({ code: 'custom', message: issue.message, path: [issue.field] });
      if (tls.requireClientCert && tls.ca === undefined) {
        ctx.addIssue({ code: 'custom', message: 'requireClientCert needs ca: client certificates are verified against it', path: ['requireClientCert'] });
      }
    });

  // A Standard Webhooks secret: "whsec_" and the base64 of 24 to 64 random bytes.
  const webhookSecret = secret.transform((value, ctx) => {
    try {
      webhookSecretBytes(value.reveal());
    } catch (err) {
      ctx.issues.push({ code: 'custom', message: (err as Error).message, input: undefined });
      return z.NEVER;
    }
    return value;
  });

  const eventFilter = z.string().refine((filter) => matchesAnyEvent(filter), {
    message: `must be "*", an event type (${WEBHOOK_EVENT_TYPES.join(', ')}) or a prefix such as "token.*"`,
  });

  const subscriber = z
    .strictObject({
      name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'subscriber names match ^[A-Za-z0-9._-]{1,64}$').optional(),
      url,
      secret: webhookSecret.optional(),
      secrets: z.array(webhookSecret).min(1).optional(),
      events: z.array(eventFilter).min(1),
    })
    .refine((s) => (s.secret === undefined) !== (s.secrets === undefined), {
      message: 'give exactly one of secret or secrets',
      path: ['secrets'],
    })
    .transform(({ name, secret, secrets, ...rest }) => ({ ...rest, name: name ?? rest.url, secrets: secrets ?? (secret ? [secret] : []) }));

  return z
    .strictObject({
      server: z
        .strictObject({
          host: z.string().min(1).optional(),
          port: port.default(8080),
          bodyLimit: z
            .union([z.number().int(), z.string().regex(BYTE_SIZE, 'a size like 64kb').transform(byteSize)])
            .pipe(z.number().min(1024, 'must be at least 1kb'))
            .default(64 * 1024),
          publicUrl: url.optional(),
          publicPort: port.optional(),
          tls: tls.optional(),
        })
        .refine((server) => server.publicPort === undefined || server.publicPort === 0 || server.publicPort !== server.port, {
          message: 'must differ from port',
          path: ['publicPort'],
        })
        .prefault({}),
      redis: buildRedisSchema(secret).prefault({}),
      keyring: secret.optional(),
      callers: z.array(caller).default([]),
      providers: z.record(z.string(), provider).default({}),
      connect: z.strictObject({ returnTo: z.array(url).default([]) }).optional(),
      refresh: z
        .strictObject({
          skewSeconds: seconds.default(300),
          jitterSeconds: seconds.default(30),
          workers: z.number().int().min(1).default(8),
          leaseSeconds: z.number().int().min(5).default(30),
          maxBackoffSeconds: z.number().int().min(1).default(300),
          failedEventAfterSeconds: seconds.default(300),
        })
        .prefault({}),
      rewrap: z.strictObject({ recordsPerSecond: z.number().min(0).default(0) }).prefault({}),
      webhooks: z
        .strictObject({
          subscribers: z.array(subscriber).default([]),
          // Seconds before each attempt; the first is the immediate one. Then dead letter.
          retrySchedule: z.array(z.number().min(0).max(86_400)).min(1).max(20).default([...STANDARD_RETRY_SCHEDULE]),
          timeoutSeconds: z.number().int().min(1).max(60).default(10),
        })
        .prefault({}),
    })
    .superRefine((config, ctx) => {
      // Runs even when parts of the config failed their own checks (their transforms have not
      // run then), so every value is looked at defensively.
      for (const id of Object.keys(config.providers)) {
        if (!PROVIDER_ID.test(id)) {
          ctx.addIssue({ code: 'custom', message: 'provider ids match ^[a-z0-9][a-z0-9_-]{0,63}$', path: ['providers', id] });
        }
      }
      const subscribers = new Set<string>();
      (Array.isArray(config.webhooks?.subscribers) ? config.webhooks.subscribers : []).forEach((subscriber, i) => {
        if (typeof subscriber?.name !== 'string') return;
        if (subscribers.has(subscriber.name)) {
          ctx.addIssue({ code: 'custom', message: `duplicate subscriber name "${subscriber.name}" (give each a name)`, path: ['webhooks', 'subscribers', i, 'name'] });
        }
        subscribers.add(subscriber.name);
      });
      const names = new Set<string>();
      const keyOwners = new Map<string, string>();
      const subjectOwners = new Map<string, string>();
      config.callers.forEach((caller, i) => {
        if (names.has(caller.name)) {
          ctx.addIssue({ code: 'custom', message: `duplicate caller name "${caller.name}"`, path: ['callers', i, 'name'] });
        }
        names.add(caller.name);
        if (caller.certSubject instanceof DistinguishedName) {
          // Without a CA no client certificate is ever verified, so the caller could never authenticate by it.
          if (typeof config.server?.tls?.ca !== 'string') {
            ctx.addIssue({ code: 'custom', message: 'certSubject needs server.tls.ca: client certificates are verified against it', path: ['callers', i, 'certSubject'] });
          }
          const owner = subjectOwners.get(caller.certSubject.canonical);
          if (owner !== undefined) {
            ctx.addIssue({ code: 'custom', message: `the same subject is also given to caller "${owner}"`, path: ['callers', i, 'certSubject'] });
          }
          subjectOwners.set(caller.certSubject.canonical, caller.name);
        }
        (Array.isArray(caller.providers) ? caller.providers : []).forEach((id, j) => {
          if (id !== '*' && PROVIDER_ID.test(id) && !(id in config.providers)) {
            ctx.addIssue({ code: 'custom', message: `unknown provider "${id}"`, path: ['callers', i, 'providers', j] });
          }
        });
        (Array.isArray(caller.keys) ? caller.keys : []).forEach((key, j) => {
          if (!Buffer.isBuffer(key?.sha256)) return;
          const hex = key.sha256.toString('hex');
          const owner = keyOwners.get(hex);
          if (owner !== undefined && owner !== caller.name) {
            ctx.addIssue({ code: 'custom', message: `the same key is also given to caller "${owner}"`, path: ['callers', i, 'keys', j] });
          }
          keyOwners.set(hex, caller.name);
        });
      });
    });
}

export type Config = z.output<ReturnType<typeof buildConfigSchema>>;
export type ProviderConfig = Config['providers'][string];
export type OAuth2ProviderConfig = Extract<ProviderConfig, { type: 'oauth2' }>;
export type OAuth1ProviderConfig = Extract<ProviderConfig, { type: 'oauth1' }>;

/** A client-credentials provider: its one app token lives at /tokens/_app/:provider. */
export function isAppProvider(provider: ProviderConfig | undefined): provider is OAuth2ProviderConfig {
  return provider?.type === 'oauth2' && provider.grant === 'client_credentials';
}
export type CallerConfig = Config['callers'][number];
export type SubscriberConfig = Config['webhooks']['subscribers'][number];
