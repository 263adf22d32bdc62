/**
 * What `Model.loadStateDict` checks before it assigns anything: names, shapes, dtypes, live tensors
 * and finite values. Nothing is assigned unless every check passes, so a bad checkpoint never leaves
 * a half-loaded model behind.
 */
import * as tf from '@tensorflow/tfjs';
import { fail, shapeStr } from './errors.js';
import type { ParamStore } from './params.js';

export interface ModelLoadOptions {
  /** Every parameter present and nothing extra (default true). Shapes, dtypes and liveness are always checked. */
  strict?: boolean;
  /**
   * Accept NaN / ±Infinity values. Default false: one NaN weight turns every output into NaN, so a
   * checkpoint holding one is refused with the parameter names.
   */
  allowNonFinite?: boolean;
}

export interface ModelLoadReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
}

/** Validates `tensors` against `params`; throws one error listing every problem. Returns what would load. */
export function checkStateDict(params: ParamStore, tensors: Map<string, tf.Tensor>, opts: ModelLoadOptions = {}): ModelLoadReport {
  const strict = opts.strict ?? true;
  const missing = params.names().filter((n) => !tensors.has(n));
  const unexpected = [...tensors.keys()].filter((n) => !params.has(n));
  const loaded = [...tensors.keys()].filter((n) => params.has(n));
  const disposed: string[] = [];
  const misShaped: string[] = [];
  const wrongDtype: string[] = [];
  for (const n of loaded) {
    const t = tensors.get(n)!;
    const want = params.get(n);
    if (t.isDisposed) {
      disposed.push(n);
      continue;
    }
    if (want.shape.length !== t.shape.length || want.shape.some((d, i) => d !== t.shape[i])) {
      misShaped.push(`${n}: expected ${shapeStr(want.shape)}, got ${shapeStr(t.shape)}`);
    }
    // No silent cast: an int32 tensor of the right size is a relabelled or wrong file, not weights.
    if (t.dtype !== want.dtype) wrongDtype.push(`${n}: expected ${want.dtype}, got ${t.dtype}`);
  }
  const parts: string[] = [];
  if (strict && missing.length) parts.push(`missing: ${missing.join(', ')}`);
  if (strict && unexpected.length) parts.push(`unexpected: ${unexpected.join(', ')}`);
  if (misShaped.length) parts.push(`mis-shaped: ${misShaped.join('; ')}`);
  if (disposed.length) parts.push(`disposed tensors (dispose them after loading, not before): ${disposed.join(', ')}`);
  if (wrongDtype.length) parts.push(`wrong dtype: ${wrongDtype.join('; ')}`);
  if (parts.length) fail(`loadStateDict: ${parts.join(' | ')}`);
  if (!opts.allowNonFinite) checkFinite(loaded.map((n) => [n, tensors.get(n)!] as const));
  return { loaded, missing, unexpected };
}

/** Counts non-finite values per float tensor on the device; one host read for all of them. */
function checkFinite(entries: (readonly [string, tf.Tensor])[]): void {
  const floats = entries.filter(([, t]) => t.dtype === 'float32' && t.size > 0);
  if (floats.length === 0) return;
  const counts = tf.tidy(() => tf.stack(floats.map(([, t]) => tf.tidy(() => tf.sum(tf.cast(tf.logicalNot(tf.isFinite(t)), 'int32'))))));
  const c = counts.dataSync();
  counts.dispose();
  const bad = floats.map(([n, t], i) => ({ n, size: t.size, k: c[i]! })).filter((x) => x.k > 0);
  if (bad.length) {
    fail(`loadStateDict: non-finite values (NaN or Infinity) in ${bad.map((b) => `${b.n} (${b.k} of ${b.size})`).join(', ')}; ` +
      'the weights are damaged or diverged; pass { allowNonFinite: true } to load them anyway');
  }
}
