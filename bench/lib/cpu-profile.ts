/**
 * Summary of a V8 .cpuprofile (node --cpu-prof): where the process spent its time, by function
 * (self and inclusive) and by package (node_modules/<package>, node:internal, the vault's own
 * folders), so a slow path can be read without opening DevTools.
 */
interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  name: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  /** Sampled time, idle excluded (ms). */
  busyMs: number;
  idleMs: number;
  selfByFunction: ProfileRow[];
  inclusiveByFunction: ProfileRow[];
  selfByPackage: ProfileRow[];
  inclusiveByPackage: ProfileRow[];
  /** Each sample counted once, for the component of the frame nearest the leaf that belongs to one (see componentOf). */
  byComponent: ProfileRow[];
}

const SPECIAL = new Set(['(program)', '(garbage collector)', '(idle)', '(root)']);

/** `skipMs`: samples in the first milliseconds of the profile (start-up, warm-up) are left out. */
export function summariseProfile(raw: unknown, top: number, skipMs = 0): ProfileSummary {
  const profile = raw as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const selfFn = new Map<string, number>();
  const selfPkg = new Map<string, number>();
  const inclFn = new Map<string, number>();
  const inclPkg = new Map<string, number>();
  const component = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  const add = (map: Map<string, number>, key: string, ms: number) => map.set(key, (map.get(key) ?? 0) + ms);

  let elapsedMs = 0;
  profile.samples.forEach((id, i) => {
    elapsedMs += (profile.timeDeltas[i] ?? 0) / 1000;
    if (elapsedMs < skipMs) return;
    // timeDeltas[i] is the time since the previous sample: attribute the next delta to this one.
    const ms = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(id);
    if (!node) return;
    if (node.callFrame.functionName === '(idle)') {
      idle += ms;
      return;
    }
    busy += ms;
    add(selfFn, functionKey(node.callFrame), ms);
    add(selfPkg, packageOf(node.callFrame), ms);
    const fns = new Set<string>();
    const pkgs = new Set<string>();
    let owner: string | null = null;
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = (byId.get(at) as ProfileNode).callFrame;
      if (frame.functionName === '(root)') break;
      fns.add(functionKey(frame));
      const pkg = packageOf(frame);
      pkgs.add(pkg);
      owner ??= componentOf(pkg, frame);
    }
    add(component, owner ?? 'node runtime (other)', ms);
    for (const fn of fns) add(inclFn, fn, ms);
    for (const pkg of pkgs) add(inclPkg, pkg, ms);
  });

  const rows = (map: Map<string, number>, n: number): ProfileRow[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms: Math.round(ms), percent: Math.round((1000 * ms) / busy) / 10 }));
  return {
    busyMs: Math.round(busy),
    idleMs: Math.round(idle),
    selfByFunction: rows(selfFn, top),
    inclusiveByFunction: rows(inclFn, top),
    selfByPackage: rows(selfPkg, top),
    inclusiveByPackage: rows(inclPkg, top),
    byComponent: rows(component, 100),
  };
}

/**
 * What part of the vault a frame belongs to, or null for plumbing that is counted for its
 * caller: V8 builtins (JSON.stringify, regexps), events, streams, buffers, timers, fs. So the
 * JSON.stringify of a log line counts for logging, the socket write of a response for node http.
 */
export function componentOf(pkg: string, frame: CallFrame): string | null {
  if (pkg === '(garbage collector)') return 'garbage collector';
  if (pkg === '(program)') return 'V8 / native (unattributed)';
  if (['pino', '@pinojs/redact', 'pino-std-serializers', 'sonic-boom', 'quick-format-unescaped', 'fast-redact', 'on-exit-leak-free', 'thread-stream'].includes(pkg)) return 'logging (pino, redaction)';
  if (pkg === 'vault observability/' && /logger/.test(frame.url)) return 'logging (pino, redaction)';
  // The request line and the latency histogram are written by one middleware.
  if (pkg === 'vault http/' && /request-lifecycle/.test(frame.url)) return 'request line and latency metric';
  if (pkg === 'prom-client' || pkg === 'vault observability/' || pkg === 'node:perf') return 'metrics (prom-client)';
  if (pkg === 'zod') return 'validation (zod)';
  if (pkg === 'node:crypto' || pkg === 'vault crypto/') return 'crypto (node:crypto, envelope, API key hash)';
  if (['ioredis', 'denque', 'standard-as-callback', 'redis-errors', 'redis-parser', 'cluster-key-slot'].includes(pkg)) return 'Redis client (ioredis)';
  if (['express', 'router', 'path-to-regexp', 'parseurl', 'content-type', 'mime-types', 'mime-db', 'send', 'finalhandler', 'encodeurl', 'escape-html', 'statuses', 'qs', 'type-is', 'media-typer', 'vary', 'cookie', 'cookie-signature', 'depd', 'debug', 'on-finished', 'fresh', 'range-parser', 'etag', 'content-disposition', 'accepts', 'negotiator', 'http-errors', 'proxy-addr', 'forwarded', 'ipaddr.js', 'merge-descriptors', 'safe-buffer', 'setprototypeof', 'inherits', 'utils-merge'].includes(pkg)) return 'express 5 + router';
  if (pkg.startsWith('node:_http') || pkg === 'node:net' || pkg === 'node:stream_base_commons' || pkg === 'node:http' || pkg === 'node:dns') return 'node http + sockets';
  if (pkg.startsWith('vault ')) return `vault code (${pkg.slice(6).replace(/\/$/, '')})`;
  return null;
}

export function renderProfile(summary: ProfileSummary): string {
  const table = (title: string, rows: ProfileRow[]) => [
    title,
    ...rows.map((row) => `  ${row.percent.toFixed(1).padStart(5)} %  ${String(row.ms).padStart(6)} ms  ${row.name}`),
  ];
  return [
    `CPU profile of the vault under the GET load (start-up and warm-up left out): ${summary.busyMs} ms busy, ${summary.idleMs} ms idle; percent of busy time`,
    ...table('self time by function', summary.selfByFunction),
    ...table('by component (each sample once, for the component nearest the leaf; builtins and node plumbing count for their caller)', summary.byComponent),
    ...table('self time by package', summary.selfByPackage),
    ...table('inclusive time by package (a sample counts for every package on its stack)', summary.inclusiveByPackage),
    ...table('inclusive time by function', summary.inclusiveByFunction),
  ].join('\n');
}

function functionKey(frame: CallFrame): string {
  if (SPECIAL.has(frame.functionName)) return frame.functionName;
  const name = frame.functionName || '(anonymous)';
  return frame.url ? `${name}  ${shortUrl(frame.url)}:${frame.lineNumber + 1}` : `${name}  (native)`;
}

function shortUrl(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) return path.slice(modules + '/node_modules/'.length);
  const src = /\/(?:src|dist|bench)\/.*$/.exec(path);
  return src ? src[0].slice(1) : path;
}

/** node_modules/<package>, node:<module>, vault <folder>, or a special V8 bucket. */
export function packageOf(frame: CallFrame): string {
  if (SPECIAL.has(frame.functionName)) return frame.functionName;
  const url = frame.url.replace(/^file:\/\//, '');
  if (!url) return '(native: V8 builtins, C++)';
  if (url.startsWith('node:')) return `node:${url.slice(5).replace(/^internal\//, '').split('/')[0]}`;
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const own = /\/(?:src|dist)\/(.*)$/.exec(url);
  if (own) {
    const parts = (own[1] as string).split('/');
    return `vault ${parts.length > 1 ? `${parts[0]}/` : (parts[0] as string)}`;
  }
  return url;
}
