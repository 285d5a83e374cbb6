/**
 * The shape every suite hands back to run.ts: figures with their unit and, where the project set
 * one, a target and whether it was met. Ratios are unitless ("×").
 */
export interface Target {
  op: '>=' | '<=';
  value: number;
}

export interface Figure {
  /** Stable key for results.json, e.g. "get.ratio.rps". */
  id: string;
  /** What the table shows. */
  name: string;
  value: number;
  unit: string;
  /** Digits after the point in the table (default: 0 for values ≥ 100, else 2). */
  digits?: number;
  target?: Target;
  pass?: boolean;
  note?: string;
}

export interface SuiteResult {
  suite: string;
  /** One line under the suite's heading: what was measured and how. */
  title: string;
  figures: Figure[];
  /** Raw data behind the figures (rounds, samples, breakdowns), written to results.json only. */
  details?: Record<string, unknown>;
  /** Things the reader of the table must know (a fallback, an unhealthy run). */
  warnings?: string[];
  /** Text printed after the table (the --profile summary). */
  appendix?: string;
}

export function figure(id: string, name: string, value: number, unit: string, extra: Omit<Figure, 'id' | 'name' | 'value' | 'unit'> = {}): Figure {
  const out: Figure = { id, name, value, unit, ...extra };
  if (out.target) out.pass = meets(value, out.target);
  return out;
}

export function meets(value: number, target: Target): boolean {
  return target.op === '>=' ? value >= target.value : value <= target.value;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The q-quantile (0..1) of samples already sorted ascending (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

export function formatValue(value: number, digits?: number): string {
  if (!Number.isFinite(value)) return String(value);
  const d = digits ?? (Math.abs(value) >= 100 ? 0 : 2);
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function formatTarget(target: Target | undefined): string {
  return target ? `${target.op === '>=' ? '≥' : '≤'} ${formatValue(target.value, Number.isInteger(target.value) && target.value >= 100 ? 0 : 2)}` : '';
}

/** The one table: a heading per suite, then its figures. */
export function renderTable(results: SuiteResult[]): string {
  const rows: string[][] = [];
  const headings = new Map<number, string[]>();
  for (const result of results) {
    headings.set(rows.length, [...(headings.get(rows.length) ?? []), `${result.suite}: ${result.title}`]);
    for (const f of result.figures) {
      rows.push([`  ${f.name}`, formatValue(f.value, f.digits), f.unit, formatTarget(f.target), f.pass === undefined ? '' : f.pass ? 'pass' : 'FAIL']);
    }
  }
  const header = ['figure', 'value', 'unit', 'target', 'result'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === 1 ? cell.padStart(widths[c] as number) : cell.padEnd(widths[c] as number)))
      .join('  ')
      .trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  rows.forEach((row, i) => {
    out.push(...(headings.get(i) ?? []), line(row));
  });
  out.push(...(headings.get(rows.length) ?? []));
  for (const result of results) for (const warning of result.warnings ?? []) out.push(`! ${result.suite}: ${warning}`);
  return out.join('\n');
}
