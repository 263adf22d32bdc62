/**
 * Statistics used by every benchmark: summaries of repeated samples, the "no difference" rule and a
 * power-law fit on log-log axes. Pure functions, no tfjs.
 */

export interface Spread {
  p25: number;
  p75: number;
  min: number;
  max: number;
}

export interface Summary {
  median: number;
  spread: Spread;
  n: number;
}

/**
 * Percentile with linear interpolation between closest ranks (numpy's default, "type 7"):
 * position (n - 1) * q in the sorted samples.
 */
export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) throw new Error('percentile: no samples');
  if (!(q >= 0 && q <= 1)) throw new Error(`percentile: q must be in [0, 1], got ${q}`);
  const s = [...samples].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 0.5);
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summarize: no samples');
  return {
    median: percentile(samples, 0.5),
    spread: {
      p25: percentile(samples, 0.25),
      p75: percentile(samples, 0.75),
      min: Math.min(...samples),
      max: Math.max(...samples),
    },
    n: samples.length,
  };
}

export type Verdict = 'no difference' | 'faster' | 'slower';

/**
 * The "no difference" rule. Two measurements differ only when their interquartile ranges
 * [p25, p75] do not overlap: if max(a.p25, b.p25) <= min(a.p75, b.p75) the verdict is
 * 'no difference'. Otherwise `a` is 'faster' or 'slower' than `b`; for a quantity where lower is
 * better (times), 'faster' means a.median < b.median, for higher-is-better (throughput) the reverse.
 */
export function compare(a: Summary, b: Summary, lowerIsBetter = true): Verdict {
  const overlap = Math.max(a.spread.p25, b.spread.p25) <= Math.min(a.spread.p75, b.spread.p75);
  if (overlap) return 'no difference';
  const aBetter = lowerIsBetter ? a.median < b.median : a.median > b.median;
  return aBetter ? 'faster' : 'slower';
}

export interface PowerFit {
  /** y ~ coefficient * x^exponent */
  exponent: number;
  coefficient: number;
  /** Coefficient of determination of the fit on log-log axes. */
  r2: number;
  n: number;
}

/** Least squares of log(y) on log(x): the fitted exponent of y = c * x^k. Needs >= 2 distinct positive x. */
export function fitPowerLaw(xs: readonly number[], ys: readonly number[]): PowerFit {
  if (xs.length !== ys.length) throw new Error(`fitPowerLaw: ${xs.length} x values but ${ys.length} y values`);
  const pts = xs.map((x, i) => [x, ys[i]!] as const).filter(([x, y]) => x > 0 && y > 0 && Number.isFinite(x) && Number.isFinite(y));
  if (pts.length < 2 || new Set(pts.map((p) => p[0])).size < 2) {
    throw new Error('fitPowerLaw: need at least 2 points with distinct positive x and positive y');
  }
  const lx = pts.map((p) => Math.log(p[0]));
  const ly = pts.map((p) => Math.log(p[1]));
  const n = pts.length;
  const mx = lx.reduce((a, b) => a + b, 0) / n;
  const my = ly.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (lx[i]! - mx) * (ly[i]! - my);
    sxx += (lx[i]! - mx) ** 2;
    syy += (ly[i]! - my) ** 2;
  }
  const k = sxy / sxx;
  const b = my - k * mx;
  let sse = 0;
  for (let i = 0; i < n; i++) sse += (ly[i]! - (b + k * lx[i]!)) ** 2;
  return { exponent: k, coefficient: Math.exp(b), r2: syy === 0 ? 1 : 1 - sse / syy, n };
}

/** Formats a number with ~3 significant digits for tables. */
export function fmt(x: number | undefined | null): string {
  if (x == null || !Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a === 0) return '0';
  if (a >= 1000) return x.toFixed(0);
  if (a >= 100) return x.toFixed(1);
  if (a >= 10) return x.toFixed(2);
  if (a >= 1) return x.toFixed(2);
  if (a >= 0.01) return x.toFixed(3);
  return x.toPrecision(2);
}
