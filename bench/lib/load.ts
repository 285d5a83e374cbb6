import autocannon from 'autocannon';
import { quantile } from './figures';

export interface LoadSpec {
  port: number;
  /** The path of each request (called once per request: spread reads over many records). */
  path: () => string;
  headers?: Record<string, string>;
  connections: number;
  /** Seconds thrown away first (JIT, connection set-up), then seconds measured. */
  warmup: number;
  duration: number;
}

export interface LoadResult {
  /** 2xx responses per second over the measured run. */
  rps: number;
  /** Latency in ms of 2xx responses (from autocannon's per-response hrtime, kept at full resolution). */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  requests: number;
  seconds: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

/**
 * Closed-loop load with autocannon in this process (never the server's): `connections`
 * keep-alive connections, each sending its next request when the previous answer arrives.
 * autocannon's own histogram keeps whole milliseconds; latencies here come from its
 * 'response' events instead, so p50 and p99 keep microseconds. `beforeMeasure` runs between the
 * warm-up and the measured run (to read counters around the measured run only).
 */
export async function runLoad(spec: LoadSpec, beforeMeasure?: () => Promise<void>): Promise<LoadResult> {
  if (spec.warmup > 0) await once(spec, spec.warmup, null);
  await beforeMeasure?.();
  const samples: number[] = [];
  const result = await once(spec, spec.duration, samples);
  samples.sort((a, b) => a - b);
  return {
    rps: samples.length / result.duration,
    p50: quantile(samples, 0.5),
    p90: quantile(samples, 0.9),
    p99: quantile(samples, 0.99),
    max: samples[samples.length - 1] ?? Number.NaN,
    requests: samples.length,
    seconds: result.duration,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

function once(spec: LoadSpec, seconds: number, samples: number[] | null): Promise<autocannon.Result> {
  return new Promise((resolveRun, reject) => {
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${spec.port}`,
        connections: spec.connections,
        duration: seconds,
        headers: spec.headers ?? {},
        requests: [{ method: 'GET', setupRequest: (request) => ({ ...request, path: spec.path() }) }],
        timeout: 10,
      },
      (err: unknown, result) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolveRun(result)),
    );
    if (samples) {
      instance.on('response', (_client, statusCode, _bytes, ms) => {
        if (statusCode >= 200 && statusCode < 300) samples.push(ms);
      });
    }
  });
}
