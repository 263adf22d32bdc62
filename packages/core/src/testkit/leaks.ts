// Tensor-leak detection around a function call.
import * as tf from '@tensorflow/tfjs';

export interface LeakOptions {
  /** Calls made (and their results disposed) before measuring, so lazily created caches don't count. Default 1. */
  warmup?: number;
  /** Name used in error messages. */
  label?: string;
}

/** Disposes every tf.Tensor found in `value` (tensors, arrays, Maps, Sets and plain objects, recursively). */
export function disposeResult(value: unknown, seen: Set<unknown> = new Set()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof tf.Tensor) {
    if (!value.isDisposed) value.dispose();
    return;
  }
  if (ArrayBuffer.isView(value)) return;
  if (Array.isArray(value) || value instanceof Set) {
    for (const v of value) disposeResult(v, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) disposeResult(v, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null) {
    for (const v of Object.values(value)) disposeResult(v, seen);
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

function runSync(fn: () => unknown, who: string): void {
  const r = fn();
  if (isThenable(r)) throw new Error(`${who}: fn returned a Promise; use the Async variant`);
  disposeResult(r);
}

/**
 * Runs `fn` `warmup` times, then once more while counting: returns the number of tensors alive
 * afterwards minus before (tf.memory().numTensors), after disposing the tensors `fn` returned.
 * A positive number means fn leaks; negative means it disposed tensors it did not create.
 */
export function countTensorLeak(fn: () => unknown, opts: Pick<LeakOptions, 'warmup'> = {}): number {
  const { warmup = 1 } = opts;
  for (let i = 0; i < warmup; i++) runSync(fn, 'countTensorLeak');
  const before = tf.memory().numTensors;
  runSync(fn, 'countTensorLeak');
  return tf.memory().numTensors - before;
}

/** Throws `"<label>: leaked N tensor(s) ..."` if countTensorLeak(fn) is not 0. */
export function assertNoLeak(fn: () => unknown, opts: LeakOptions = {}): void {
  const n = countTensorLeak(fn, opts);
  if (n !== 0) throw new Error(leakMessage(n, opts.label));
}

async function runAsync(fn: () => unknown): Promise<void> {
  disposeResult(await fn());
}

/** countTensorLeak for async functions (awaits each call). */
export async function countTensorLeakAsync(fn: () => unknown, opts: Pick<LeakOptions, 'warmup'> = {}): Promise<number> {
  const { warmup = 1 } = opts;
  for (let i = 0; i < warmup; i++) await runAsync(fn);
  const before = tf.memory().numTensors;
  await runAsync(fn);
  return tf.memory().numTensors - before;
}

/** assertNoLeak for async functions. */
export async function assertNoLeakAsync(fn: () => unknown, opts: LeakOptions = {}): Promise<void> {
  const n = await countTensorLeakAsync(fn, opts);
  if (n !== 0) throw new Error(leakMessage(n, opts.label));
}

function leakMessage(n: number, label?: string): string {
  const who = label ?? 'function';
  return n > 0
    ? `${who}: leaked ${n} tensor${n === 1 ? '' : 's'} (tf.memory().numTensors grew by ${n} after one call, returned tensors disposed)`
    : `${who}: disposed ${-n} tensor${n === -1 ? '' : 's'} it did not create (tf.memory().numTensors shrank by ${-n})`;
}
