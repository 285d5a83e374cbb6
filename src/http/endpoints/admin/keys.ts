import { z } from 'zod';
import type { Deps } from '../../../deps';
import { endpoint } from '../../endpoint';

const noParams = z.strictObject({});

/**
 * GET /admin/keys — per key: records it protects, whether it is the active key, the live
 * replicas that hold it.
 */
export function listKeys(deps: Deps) {
  return endpoint(deps, {
    scope: 'admin',
    params: noParams,
    async handle({ res }) {
      res.json(await deps.keyAdmin.status());
    },
  });
}

/**
 * POST /admin/keys/reload — re-read the keyring on this replica (SIGHUP does the same; each
 * replica reloads on its own). 409 key_in_use when it lacks a key still in use, 400 when it
 * does not parse; the old keyring stays in force in both cases.
 */
export function reloadKeys(deps: Deps) {
  return endpoint(deps, {
    scope: 'admin',
    params: noParams,
    async handle({ caller, res }) {
      res.json(await deps.keyAdmin.reload(caller.name));
    },
  });
}

/** POST /admin/keys/recount — recount records per key and per state in every shard and repair the counters. */
export function recountKeys(deps: Deps) {
  return endpoint(deps, {
    scope: 'admin',
    params: noParams,
    async handle({ res }) {
      const result = await deps.keyAdmin.recount();
      res.json({ ...result, ...(await deps.keyAdmin.status()) });
    },
  });
}

/** POST /admin/rewrap — 202 with the job (the one already running, if any). */
export function startRewrap(deps: Deps) {
  return endpoint(deps, {
    scope: 'admin',
    params: noParams,
    async handle({ caller, res }) {
      res.status(202).json({ job: await deps.rewrap.start(caller.name) });
    },
  });
}

/** GET /admin/rewrap/:id — progress: state, total, done, failed, rate (records/s), ETA. */
export function getRewrap(deps: Deps) {
  return endpoint(deps, {
    scope: 'admin',
    params: z.strictObject({ id: z.uuid('job ids are UUIDs') }),
    async handle({ params, res }) {
      res.json({ job: await deps.rewrap.require(params.id) });
    },
  });
}
