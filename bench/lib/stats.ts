// Small statistics helpers for the bench harness.

export type Spread = { readonly median: number; readonly min: number; readonly max: number; readonly n: number };

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function spread(xs: readonly number[]): Spread {
  const v = xs.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/** Nearest-rank percentile of an already sorted array. */
export function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k] as number;
}

export function fmt(x: number, digits = 1): string {
  if (!Number.isFinite(x)) return '–';
  return x.toFixed(digits);
}

export function fmtInt(x: number): string {
  if (!Number.isFinite(x)) return '–';
  return Math.round(x).toLocaleString('en-US');
}

/** "12.3 (11.0–14.2)", or just the value when there is one sample. */
export function fmtSpread(s: Spread, digits = 1, int = false): string {
  const f = (x: number): string => (int ? fmtInt(x) : fmt(x, digits));
  if (s.n === 0) return '–';
  if (s.n === 1) return f(s.median);
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}
