/** Argument checks that name the argument, the expected and the actual value. */
import type * as tf from '@tensorflow/tfjs';

export class VlmixError extends Error {
  override name = 'VlmixError';
}

export function fail(message: string): never {
  throw new VlmixError(message);
}

export function shapeStr(shape: readonly (number | null | undefined)[]): string {
  return `[${shape.map((d) => (d == null ? '*' : String(d))).join(', ')}]`;
}

/** Checks rank and the dimensions given (null = any). */
export function checkShape(arg: string, t: tf.Tensor, expected: readonly (number | null)[]): void {
  const ok = t.rank === expected.length && expected.every((d, i) => d == null || d === t.shape[i]);
  if (!ok) fail(`${arg}: expected shape ${shapeStr(expected)}, got ${shapeStr(t.shape)}`);
}

export function checkRank(arg: string, t: tf.Tensor, ranks: number | number[]): void {
  const rs = Array.isArray(ranks) ? ranks : [ranks];
  if (!rs.includes(t.rank)) fail(`${arg}: expected rank ${rs.join(' or ')}, got rank ${t.rank} (shape ${shapeStr(t.shape)})`);
}

export function checkDtype(arg: string, t: tf.Tensor, dtypes: tf.DataType | tf.DataType[]): void {
  const ds = Array.isArray(dtypes) ? dtypes : [dtypes];
  if (!ds.includes(t.dtype)) fail(`${arg}: expected dtype ${ds.join(' or ')}, got ${t.dtype}`);
}

export function checkPositiveInt(arg: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`${arg}: expected a positive integer, got ${JSON.stringify(v)}`);
}
