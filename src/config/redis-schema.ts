import { z } from 'zod';
import { parseHostPort, parseRedisUrl, splitUrlList, type RedisAddress } from '../store/redis-url';
import type { ConfigSecret } from './schema';

/**
 * The `redis:` section (DESIGN §3). Where the vault's Redis is, one of:
 *
 *   url       one Redis (redis:// or rediss://, with AUTH/ACL credentials); REDIS_URL overrides it.
 *             A url that turns out to be a Redis Cluster node is used as the cluster's seed.
 *   cluster   seed nodes of a Redis Cluster: a list of URLs, each a secret reference (one that
 *             holds several URLs separated by commas counts as several). They share one scheme
 *             and one set of credentials, and name database 0 (a cluster has no other).
 *   sentinel  a master group watched by Redis Sentinel: the sentinels' addresses, the group's
 *             name, the data nodes' credentials and the sentinels' own.
 *
 * Every problem names its field and never quotes a URL: it may hold a password.
 */
export function buildRedisSchema(secret: z.ZodType<ConfigSecret, unknown>) {
  const cluster = z
    .preprocess((value) => (Array.isArray(value) ? value : [value]), z.array(secret).min(1, 'give at least one seed node URL'))
    .superRefine((entries, ctx) => {
      const seen: RedisAddress[] = [];
      entries.forEach((entry, i) => {
        // A transform that failed leaves no ConfigSecret: its own issue is reported already.
        if (typeof entry?.reveal !== 'function') return;
        const urls = splitUrlList(entry.reveal());
        if (urls.length === 0) ctx.addIssue({ code: 'custom', message: 'holds no URL', path: [i] });
        urls.forEach((text, j) => {
          const where = urls.length > 1 ? `URL ${j + 1} of ${urls.length}: ` : '';
          const url = parseRedisUrl(text);
          if ('problem' in url) return ctx.addIssue({ code: 'custom', message: `${where}${url.problem}`, path: [i] });
          if (url.db !== 0) ctx.addIssue({ code: 'custom', message: `${where}a Redis Cluster has only database 0`, path: [i] });
          const first = seen[0];
          if (first && first.tls !== url.tls) ctx.addIssue({ code: 'custom', message: `${where}use one scheme (redis:// or rediss://) for every seed node`, path: [i] });
          if (first && (first.username !== url.username || first.password !== url.password)) {
            ctx.addIssue({ code: 'custom', message: `${where}every seed node must carry the same credentials (the cluster's nodes share them)`, path: [i] });
          }
          seen.push(url);
        });
      });
    });

  const sentinel = z
    .strictObject({
      sentinels: z.preprocess((value) => (Array.isArray(value) || value === undefined ? value : [value]), z.array(z.string().min(1)).min(1, 'give at least one sentinel')),
      /** The master group's name as the sentinels know it (`sentinel monitor <name> ...`). */
      name: z.string().min(1),
      username: secret.optional(),
      password: secret.optional(),
      sentinelUsername: secret.optional(),
      sentinelPassword: secret.optional(),
      /** TLS to the sentinels and to the data nodes; implied by rediss:// sentinel URLs. */
      tls: z.boolean().optional(),
    })
    .transform((config, ctx) => {
      const addresses = config.sentinels.map((text, i) => {
        const address = parseHostPort(text, 26379);
        if ('problem' in address) ctx.addIssue({ code: 'custom', message: address.problem, path: ['sentinels', i] });
        return address;
      });
      const valid = addresses.filter((address): address is Exclude<typeof address, { problem: string }> => !('problem' in address));
      const schemes = new Set(valid.map((address) => address.tls).filter((tls) => tls !== undefined));
      if (schemes.size > 1) ctx.addIssue({ code: 'custom', message: 'use one scheme (redis:// or rediss://) for every sentinel', path: ['sentinels'] });
      const implied = schemes.has(true);
      if (config.tls === false && implied) ctx.addIssue({ code: 'custom', message: 'rediss:// sentinels need TLS; remove tls: false', path: ['tls'] });
      return { ...config, sentinels: valid.map(({ host, port }) => ({ host, port })), tls: config.tls ?? implied };
    });

  return z
    .strictObject({
      url: secret.optional(),
      cluster: cluster.optional(),
      sentinel: sentinel.optional(),
      keyPrefix: z
        .string()
        .regex(/^[A-Za-z0-9:._-]{0,64}$/, 'letters, digits and : . _ - only (no braces: they would break hash tags)')
        .default('tv:'),
      /** WAIT for this many replicas after writing a rotated refresh token (on a cluster: those of the key's master). */
      waitReplicas: z.number().int().min(0).default(0),
    })
    .superRefine((redis, ctx) => {
      const given = (['url', 'cluster', 'sentinel'] as const).filter((field) => redis[field] !== undefined);
      if (given.length > 1) {
        ctx.addIssue({ code: 'custom', message: `give only one of url, cluster or sentinel (found ${given.join(' and ')})`, path: [given[1]!] });
      }
    });
}

export type RedisConfig = z.output<ReturnType<typeof buildRedisSchema>>;
