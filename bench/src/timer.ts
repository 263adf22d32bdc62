/**
 * The measurement policy, identical in bench/reference/common.py:
 *   1. `warmup` calls (at least one), continued until they have taken minWarmupMs (however many calls): a JIT
 *      (V8 here) compiles a hot function only after many calls; the last call's time t calibrates
 *   2. inner = fixed, or clamp(ceil(minSampleMs / t), 1, maxInner)
 *   3. if one call is slow (t * repeats > maxCaseMs), repeats = max(3, floor(maxCaseMs / t)) so a single
 *      benchmark cannot take much longer than maxCaseMs (never fewer than 3 samples, never more than asked)
 *   4. `repeats` samples, each the wall time of `inner` back-to-back calls divided by inner
 * Each call synchronises its result (dataSync) itself, so the timed region covers the whole work.
 */
export interface TimerPolicy {
  warmup: number;
  /** Keep warming up until the warm-up calls have taken this long (ms, however many calls). Default 0. */
  minWarmupMs?: number;
  repeats: number;
  minSampleMs: number;
  maxInner: number;
  /** Time budget of one benchmark's timed samples, ms (see step 3). */
  maxCaseMs: number;
}

export function measure(run: () => void, policy: TimerPolicy, fixedInner?: number): { samplesMs: number[]; inner: number } {
  let last = 0;
  const start = performance.now();
  const minWarmupMs = policy.minWarmupMs ?? 0;
  for (let w = 0; w < Math.max(1, policy.warmup) || performance.now() - start < minWarmupMs; w++) {
    const t0 = performance.now();
    run();
    last = performance.now() - t0;
  }
  const inner = fixedInner ?? Math.min(policy.maxInner, Math.max(1, Math.ceil(policy.minSampleMs / Math.max(last, 1e-3))));
  const repeats = last * policy.repeats > policy.maxCaseMs
    ? Math.min(policy.repeats, Math.max(3, Math.floor(policy.maxCaseMs / Math.max(last, 1e-3))))
    : policy.repeats;
  const samplesMs: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) run();
    samplesMs.push((performance.now() - t0) / inner);
  }
  return { samplesMs, inner };
}

/** Per-call milliseconds -> the benchmark's unit. */
export function toUnit(ms: number, unit: 'ms' | 'us/op' | 'tokens/s', perCall = 1): number {
  if (unit === 'ms') return ms;
  if (unit === 'us/op') return (ms * 1000) / perCall;
  return perCall / (ms / 1000);
}
