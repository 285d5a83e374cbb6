import { z } from 'zod';
import type { KeyStatus } from '../../../admin/key-admin';
import type { RewrapJobView } from '../../../admin/rewrap';
import { endpoint } from '../../endpoint';
import { failure, json, retryLater, timestamp, type Same } from '../../openapi/common';

const keyStatus = {
  active: z.string().nullable().meta({ description: 'The key every replica seals with.' }),
  keys: z.array(
    z.strictObject({
      id: z.string(),
      records: z.number().int().meta({ description: 'Records sealed under this key.' }),
      active: z.boolean(),
      replicas: z.array(z.string()).meta({ description: 'Live replicas holding this key (`<host>:<pid>:<id>`).' }),
    }),
  ),
};
const keyStatusSchema = z.strictObject(keyStatus).meta({ id: 'KeyStatus' });
const recountSchema = z.strictObject({
  shards: z.number().int(),
  repaired: z.number().int(),
  busy: z.array(z.number().int()).meta({ description: 'Shards still being written after 3 passes: run it again.' }),
  ...keyStatus,
});

const rewrapJob = z
  .strictObject({
    id: z.uuid(),
    state: z.enum(['running', 'done', 'failed']),
    target: z.string().meta({ description: 'The key data keys are re-wrapped under.' }),
    total: z.number().int(),
    done: z.number().int(),
    failed: z.number().int(),
    skipped: z.number().int(),
    rate: z.number().meta({ description: 'Records per second.' }),
    eta_seconds: z.number().nullable(),
    started_at: timestamp,
    updated_at: timestamp,
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'RewrapJob' });
const rewrapAnswer = z.strictObject({ job: rewrapJob });

const keyStatusMatches: Same<KeyStatus, z.infer<typeof keyStatusSchema>> = true;
const rewrapJobMatches: Same<RewrapJobView, z.infer<typeof rewrapJob>> = true;
void [keyStatusMatches, rewrapJobMatches];

const redisDown = retryLater('`unavailable`: Redis is unreachable.');

/**
 * GET /admin/keys — per key: records it protects, whether it is the active key, the live
 * replicas that hold it.
 */
export const listKeys = endpoint({
  method: 'get',
  path: '/admin/keys',
  operationId: 'listKeys',
  summary: 'The keyring as Redis sees it',
  description: 'Per key: the records it protects, whether it is the active key, the live replicas that hold it.',
  scope: 'admin',
  responses: {
    200: json('The keys.', keyStatusSchema),
    503: redisDown,
  },
  async handle({ deps, res }) {
    res.json(await deps.keyAdmin.status());
  },
});

/**
 * POST /admin/keys/reload — re-read the keyring on this replica (SIGHUP does the same; each
 * replica reloads on its own). 409 key_in_use when it lacks a key still in use, 400 when it
 * does not parse; the old keyring stays in force in both cases.
 */
export const reloadKeys = endpoint({
  method: 'post',
  path: '/admin/keys/reload',
  operationId: 'reloadKeys',
  summary: 'Re-read the keyring on this replica',
  description: 'Each replica reloads on its own: use SIGHUP or the file watch to reach all of them. When refused, the old keyring stays in force.',
  scope: 'admin',
  responses: {
    200: json('Reloaded: the keys.', keyStatusSchema),
    400: failure('`invalid_request`: bad input, or the keyring does not parse.'),
    409: failure('`key_in_use`: the new keyring lacks keys still in use, listed in `details`.'),
    503: redisDown,
  },
  async handle({ deps, caller, res }) {
    res.json(await deps.keyAdmin.reload(caller.name));
  },
});

/** POST /admin/keys/recount — recount records per key and per state in every shard and repair the counters. */
export const recountKeys = endpoint({
  method: 'post',
  path: '/admin/keys/recount',
  operationId: 'recountKeys',
  summary: 'Recount records per key and repair the counters',
  scope: 'admin',
  responses: {
    200: json('Recounted: the shards repaired, and the keys.', recountSchema),
    503: redisDown,
  },
  async handle({ deps, res }) {
    const result = await deps.keyAdmin.recount();
    res.json({ ...result, ...(await deps.keyAdmin.status()) } satisfies z.infer<typeof recountSchema>);
  },
});

/** POST /admin/rewrap — 202 with the job (the one already running, if any). */
export const startRewrap = endpoint({
  method: 'post',
  path: '/admin/rewrap',
  operationId: 'startRewrap',
  summary: 'Re-wrap every data key under the active key',
  description: 'A job already running is returned instead of starting a second one.',
  scope: 'admin',
  responses: {
    202: json('The job.', rewrapAnswer),
    400: failure('`invalid_request`: bad input; this replica does not hold the active key yet; or a job was starting concurrently.'),
    503: redisDown,
  },
  async handle({ deps, caller, res }) {
    res.status(202).json({ job: await deps.rewrap.start(caller.name) } satisfies z.infer<typeof rewrapAnswer>);
  },
});

/** GET /admin/rewrap/:id — progress: state, total, done, failed, rate (records/s), ETA. */
export const getRewrap = endpoint({
  method: 'get',
  path: '/admin/rewrap/:id',
  operationId: 'getRewrap',
  summary: "A rewrap job's progress",
  scope: 'admin',
  params: z.strictObject({ id: z.uuid('job ids are UUIDs') }),
  responses: {
    200: json('The job.', rewrapAnswer),
    404: failure('`not_found`: no such job.'),
    503: redisDown,
  },
  async handle({ deps, params, res }) {
    res.json({ job: await deps.rewrap.require(params.id) } satisfies z.infer<typeof rewrapAnswer>);
  },
});
