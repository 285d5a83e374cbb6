/**
 * Bench options: parsed once by run.ts from its arguments and environment, handed to each suite
 * process as JSON in BENCH_OPTIONS. A suite started on its own parses its own arguments.
 *
 *   npm run bench -- [--quick] [--only get,crypto,startup,scale,refresh,rewrap,redis-bytes]
 *                    [--duration S] [--warmup S] [--rounds N] [--connections N] [--users N]
 *                    [--scale N] [--credentials N] [--bytes N] [--starts N] [--crypto-seconds S]
 *                    [--profile] [--vault PATH|source] [--out PATH]
 *
 * Environment: BENCH_SCALE (= --scale), BENCH_CREDENTIALS (= --credentials). Defaults (full /
 * --quick) are in parseOptions.
 */
export const SUITES = ['get', 'crypto', 'startup', 'scale', 'refresh', 'rewrap', 'redis-bytes'] as const;
export type SuiteName = (typeof SUITES)[number];

export interface BenchOptions {
  quick: boolean;
  only: SuiteName[];
  /** Stored credentials of the large side of the scale suite (1,000,000; quick: 100,000). */
  scale: number;
  /** Credentials of the refresh and rewrap suites (100,000; quick: 20,000). */
  credentials: number;
  /** Credentials per shape of the Redis bytes suite. */
  bytesCount: number;
  /** Measured seconds of each load round, after `warmup` seconds that are thrown away. */
  duration: number;
  warmup: number;
  /** Rounds per side: baseline, vault, baseline, vault, ... (median reported). */
  rounds: number;
  connections: number;
  /** Users the GET load spreads over. */
  users: number;
  /** Spawns of the vault for the start-up figure. */
  starts: number;
  /** Seconds of each crypto measurement. */
  cryptoSeconds: number;
  /** Run the vault under --cpu-prof in an extra GET round and summarise where the time goes. */
  profile: boolean;
  /** A built main.js to run instead of building one, or "source" to run src/main.ts with tsx. */
  vault: string | null;
  /** How run.ts describes the vault it built (suites get its path in `vault`). */
  vaultLabel?: string;
  /** Where results.json goes. */
  out: string;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv, defaultOut: string): BenchOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}" (see bench/lib/options.ts)`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (['quick', 'profile'].includes(name)) flags.set(name, 'true');
    else {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new Error(`--${name} needs a value`);
      flags.set(name, value);
    }
  }
  const known = ['quick', 'profile', 'only', 'scale', 'credentials', 'bytes', 'duration', 'warmup', 'rounds', 'connections', 'users', 'starts', 'crypto-seconds', 'vault', 'out'];
  for (const name of flags.keys()) if (!known.includes(name)) throw new Error(`unknown option --${name}; known: ${known.map((k) => `--${k}`).join(' ')}`);

  const quick = flags.get('quick') === 'true';
  const number = (name: string, envName: string | null, full: number, fast: number): number => {
    const raw = flags.get(name) ?? (envName ? env[envName] : undefined);
    if (raw === undefined || raw === '') return quick ? fast : full;
    const value = Number(raw.replace(/_/g, ''));
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got "${raw}"`);
    return value;
  };
  const only = (flags.get('only') ?? SUITES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const name of only) if (!(SUITES as readonly string[]).includes(name)) throw new Error(`unknown suite "${name}"; suites: ${SUITES.join(', ')}`);
  return {
    quick,
    only: only as SuiteName[],
    scale: Math.round(number('scale', 'BENCH_SCALE', 1_000_000, 100_000)),
    credentials: Math.round(number('credentials', 'BENCH_CREDENTIALS', 100_000, 20_000)),
    bytesCount: Math.round(number('bytes', null, 20_000, 5_000)),
    // Many short rounds rather than a few long ones: on a shared machine the load drifts, and
    // the median of the per-round ratios shrugs off a round that met a burst.
    duration: number('duration', null, 5, 4),
    warmup: number('warmup', null, 2, 1),
    rounds: Math.round(number('rounds', null, 7, 3)),
    connections: Math.round(number('connections', null, 32, 32)),
    users: Math.round(number('users', null, 1000, 1000)),
    starts: Math.round(number('starts', null, 5, 3)),
    cryptoSeconds: number('crypto-seconds', null, 2, 1),
    profile: flags.get('profile') === 'true',
    vault: flags.get('vault') ?? null,
    out: flags.get('out') ?? defaultOut,
  };
}

/** The options run.ts handed down, or the suite's own command line. */
export function suiteOptions(defaultOut: string): BenchOptions {
  const passed = process.env.BENCH_OPTIONS;
  if (passed) return JSON.parse(passed) as BenchOptions;
  return parseOptions(process.argv.slice(2), process.env, defaultOut);
}
