import { describe, expect, it } from 'vitest';
import { compare, fitPowerLaw, median, percentile, summarize } from '../src/stats.js';
import { measure, toUnit } from '../src/timer.js';

describe('percentiles and summaries', () => {
  it('median of odd and even counts', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it('linear interpolation between closest ranks (numpy default)', () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(xs, 0.25)).toBeCloseTo(3.25, 12);
    expect(percentile(xs, 0.75)).toBeCloseTo(7.75, 12);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile(xs, 1)).toBe(10);
    // Order of the input does not matter and it is not modified.
    const shuffled = [10, 3, 7, 1, 9, 2, 8, 4, 6, 5];
    expect(percentile(shuffled, 0.25)).toBeCloseTo(3.25, 12);
    expect(shuffled[0]).toBe(10);
  });

  it('summarize reports median, p25/p75, min/max and n', () => {
    const s = summarize([3, 1, 4, 1, 5, 9, 2, 6, 5]);
    expect(s).toEqual({ median: 4, spread: { p25: 2, p75: 5, min: 1, max: 9 }, n: 9 });
  });

  it('rejects empty input and bad q', () => {
    expect(() => summarize([])).toThrow(/no samples/);
    expect(() => percentile([1], 1.5)).toThrow(/q must be in \[0, 1\]/);
  });
});

describe('the "no difference" rule', () => {
  const s = (p25: number, med: number, p75: number) => ({ median: med, spread: { p25, p75, min: p25 - 1, max: p75 + 1 }, n: 5 });

  it('overlapping interquartile ranges are no difference', () => {
    expect(compare(s(10, 11, 12), s(11.5, 13, 14))).toBe('no difference');
    // Touching ranges count as overlapping.
    expect(compare(s(10, 11, 12), s(12, 13, 14))).toBe('no difference');
    // Medians 30% apart but wide spreads: still no difference.
    expect(compare(s(5, 10, 20), s(8, 13, 25))).toBe('no difference');
  });

  it('disjoint ranges give faster/slower by the median', () => {
    expect(compare(s(10, 11, 12), s(12.01, 13, 14))).toBe('faster');
    expect(compare(s(20, 21, 22), s(10, 11, 12))).toBe('slower');
  });

  it('for throughput, higher is better', () => {
    expect(compare(s(100, 110, 120), s(50, 55, 60), false)).toBe('faster');
    expect(compare(s(50, 55, 60), s(100, 110, 120), false)).toBe('slower');
  });

  it('min/max do not matter, only p25..p75', () => {
    const a = { median: 10, spread: { p25: 9, p75: 11, min: 0, max: 100 }, n: 5 };
    const b = { median: 20, spread: { p25: 19, p75: 21, min: 0, max: 100 }, n: 5 };
    expect(compare(a, b)).toBe('faster');
  });
});

describe('power-law fit', () => {
  it('recovers a known exponent and coefficient from exact data', () => {
    const xs = [16, 32, 64, 128, 256, 512];
    const ys = xs.map((x) => 0.003 * x ** 1.75);
    const f = fitPowerLaw(xs, ys);
    expect(f.exponent).toBeCloseTo(1.75, 10);
    expect(f.coefficient).toBeCloseTo(0.003, 10);
    expect(f.r2).toBeCloseTo(1, 10);
    expect(f.n).toBe(6);
  });

  it('recovers the exponent under multiplicative noise', () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const xs = Array.from({ length: 40 }, (_, i) => 2 ** (1 + i / 4));
    const ys = xs.map((x) => 5 * x ** 2 * Math.exp((rnd() - 0.5) * 0.1));
    const f = fitPowerLaw(xs, ys);
    expect(Math.abs(f.exponent - 2)).toBeLessThan(0.02);
    expect(f.r2).toBeGreaterThan(0.99);
  });

  it('linear and constant data', () => {
    expect(fitPowerLaw([1, 2, 4, 8], [3, 6, 12, 24]).exponent).toBeCloseTo(1, 12);
    expect(fitPowerLaw([1, 2, 4, 8], [5, 5, 5, 5]).exponent).toBeCloseTo(0, 12);
  });

  it('needs two distinct positive x', () => {
    expect(() => fitPowerLaw([4, 4], [1, 2])).toThrow(/distinct positive x/);
    expect(() => fitPowerLaw([1, 2], [1])).toThrow(/2 x values but 1 y values/);
  });
});

describe('timer', () => {
  it('warms up, calibrates inner calls and takes `repeats` samples', () => {
    let calls = 0;
    const r = measure(() => { calls++; }, { warmup: 3, repeats: 4, minSampleMs: 0.5, maxInner: 50, maxCaseMs: 1e9 });
    expect(r.samplesMs).toHaveLength(4);
    expect(r.inner).toBeGreaterThanOrEqual(1);
    expect(r.inner).toBeLessThanOrEqual(50);
    expect(calls).toBe(3 + 4 * r.inner);
  });

  it('warm-up continues until minWarmupMs has passed, however many calls that takes', () => {
    const starts: number[] = [];
    const busy = () => { const t0 = performance.now(); starts.push(t0); while (performance.now() - t0 < 1) { /* 1 ms */ } };
    measure(busy, { warmup: 2, minWarmupMs: 30, repeats: 1, minSampleMs: 0, maxInner: 1, maxCaseMs: 1e9 }, 1);
    const warm = starts.length - 1; // then one timed sample of one call
    const t0 = starts[0]!;
    expect(warm).toBeGreaterThanOrEqual(2);
    expect(starts[warm]! - t0).toBeGreaterThanOrEqual(29.5); // the sample starts after ~30 ms of warm-up
    expect(starts[warm - 1]! - t0).toBeLessThan(30.5); // and the last warm-up call started before that
    // Fast calls are not cut off at a call count: the first benchmark of a fresh process (matmul 256^3, 0.1 ms)
    // was measured within 0.2 s of the start while V8 still compiled in the background.
    let calls = 0;
    const w0 = performance.now();
    measure(() => { calls++; }, { warmup: 2, minWarmupMs: 20, repeats: 1, minSampleMs: 0, maxInner: 1, maxCaseMs: 1e9 }, 1);
    expect(performance.now() - w0).toBeGreaterThanOrEqual(19.5);
    expect(calls).toBeGreaterThan(1001);
  });

  it('a fixed inner count skips calibration; at least one warm-up call', () => {
    let calls = 0;
    const r = measure(() => { calls++; }, { warmup: 0, repeats: 2, minSampleMs: 1000, maxInner: 1000, maxCaseMs: 1e9 }, 3);
    expect(r.inner).toBe(3);
    expect(calls).toBe(1 + 2 * 3);
  });

  it('a slow benchmark gets fewer samples, never below 3', () => {
    let calls = 0;
    const slow = () => { calls++; const t = performance.now(); while (performance.now() - t < 5) { /* busy 5 ms */ } };
    const r = measure(slow, { warmup: 1, repeats: 50, minSampleMs: 0, maxInner: 1, maxCaseMs: 20 });
    expect(r.samplesMs.length).toBeGreaterThanOrEqual(3);
    expect(r.samplesMs.length).toBeLessThanOrEqual(4);
    const fast = measure(() => {}, { warmup: 1, repeats: 6, minSampleMs: 0, maxInner: 1, maxCaseMs: 20 });
    expect(fast.samplesMs).toHaveLength(6);
  });

  it('unit conversion', () => {
    expect(toUnit(2, 'ms')).toBe(2);
    expect(toUnit(2, 'us/op', 1000)).toBeCloseTo(2, 12);
    expect(toUnit(500, 'tokens/s', 32)).toBeCloseTo(64, 12);
  });
});
