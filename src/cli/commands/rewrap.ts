import { z } from 'zod';
import { ADMIN_OPTIONS, ADMIN_OPTIONS_HELP, AdminClient, ApiError, UnreachableError } from '../admin-client';
import { parseCommandLine, type Command } from '../command';
import { CliError, EXIT_FAILED, EXIT_OK, UsageError, type Io } from '../io';
import { formatDuration, ProgressReporter } from '../progress';

const POLL_MS = 500;
/** How long the vault may be unreachable or answer 5xx while following before giving up. */
const OUTAGE_TOLERANCE_MS = 30_000;
/** A running job whose counters have not moved for this long gets a warning. */
const STALL_WARNING_MS = 60_000;
const EXIT_INTERRUPTED = 130;

const usage = `Usage: token-vault rewrap [--url URL] [--key KEY] [--no-follow]

POST /admin/rewrap: re-wraps the data key of every record sealed under a key other than the
active one, so old keys can be retired. If a job is already running, that job is followed
instead of starting another. Then follows GET /admin/rewrap/:id every ${POLL_MS} ms, with a
progress bar on stderr (plain progress lines when stderr is not a terminal), until the job
ends. Exits 0 when it is done with no failed record, 1 otherwise.

Ctrl-C stops following; the job keeps running on the vault. Run the command again to follow it.

Options:
${ADMIN_OPTIONS_HELP}
  --no-follow  start the job, print its id and exit 0
  -h, --help   this help`;

const jobSchema = z.object({
  id: z.string(),
  state: z.string(),
  target: z.string(),
  total: z.number(),
  done: z.number(),
  failed: z.number(),
  skipped: z.number(),
  rate: z.number(),
  eta_seconds: z.number().nullable(),
  started_at: z.string(),
  updated_at: z.string(),
  finished_at: z.string().nullable(),
});
const jobAnswer = z.object({ job: jobSchema });
type Job = z.infer<typeof jobSchema>;

async function run(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, { ...ADMIN_OPTIONS, 'no-follow': { type: 'boolean' } }, usage, true);
  if (values.help) {
    io.stdout.write(`${usage}\n`);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`, usage);
  const client = AdminClient.fromOptions(values, io, usage);

  let { job } = await client.post('/admin/rewrap', jobAnswer);
  io.stderr.write(`rewrap job ${job.id}: ${job.total} records to re-wrap under "${job.target}" (started ${job.started_at})\n`);
  if (values['no-follow']) {
    io.stdout.write(`${job.id}\n`);
    return EXIT_OK;
  }

  const progress = new ProgressReporter(io.stderr, () => io.now().getTime());
  let interrupted = false;
  const release = io.onInterrupt(() => (interrupted = true));
  try {
    let outageSince: number | undefined;
    let lastMove = { at: io.now().getTime(), updated: job.updated_at };
    let warnedStall = false;
    progress.update(job);
    while (job.state === 'running') {
      await io.sleep(POLL_MS);
      if (interrupted) {
        progress.note(`token-vault: stopped following; rewrap job ${job.id} keeps running on the vault. Run \`token-vault rewrap\` again to follow it.`);
        return EXIT_INTERRUPTED;
      }
      const now = io.now().getTime();
      try {
        job = (await client.get(`/admin/rewrap/${encodeURIComponent(job.id)}`, jobAnswer)).job;
      } catch (err) {
        if (!isTransient(err)) throw err;
        if (outageSince === undefined) {
          outageSince = now;
          progress.note(`token-vault: ${(err as Error).message}; retrying for ${OUTAGE_TOLERANCE_MS / 1000} s`);
        }
        if (now - outageSince >= OUTAGE_TOLERANCE_MS) {
          progress.clear();
          throw new CliError(`gave up following rewrap job ${job.id}: ${(err as Error).message}. The job keeps running on the vault; run \`token-vault rewrap\` again to follow it.`);
        }
        continue;
      }
      outageSince = undefined;
      if (job.updated_at !== lastMove.updated) {
        lastMove = { at: now, updated: job.updated_at };
        warnedStall = false;
      } else if (!warnedStall && job.state === 'running' && now - lastMove.at >= STALL_WARNING_MS) {
        warnedStall = true;
        progress.note(`token-vault: no progress for ${STALL_WARNING_MS / 1000} s; if the replica running the job stopped, another replica resumes it once its lease lapses`);
      }
      progress.update(job);
    }
    progress.finish(job);
  } finally {
    release();
  }
  return report(job, io);
}

function report(job: Job, io: Io): number {
  const took = job.finished_at ? ` in ${formatDuration((Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000)}` : '';
  const summary = `rewrap job ${job.id} ${job.state}${took}: ${job.done} re-wrapped under "${job.target}", ${job.failed} failed, ${job.skipped} skipped (rewritten meanwhile)`;
  io.stdout.write(`${summary}\n`);
  if (job.state === 'done' && job.failed === 0) return EXIT_OK;
  const why =
    job.failed > 0
      ? `${job.failed} records could not be opened and stay under their old key; the vault logs each one ("rewrap: record could not be opened")`
      : `the job ended in state "${job.state}"`;
  throw new CliError(why, EXIT_FAILED);
}

function isTransient(err: unknown): boolean {
  return err instanceof UnreachableError || (err instanceof ApiError && err.status >= 500);
}

export const rewrap: Command = { name: 'rewrap', summary: 're-wrap every record under the active key and follow the job', usage, run };
