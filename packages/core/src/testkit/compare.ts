// Element-wise tensor comparison with numpy.allclose semantics and informative failures.
import * as tf from '@tensorflow/tfjs';

/** A tf.Tensor, `{shape, data}` (row-major values), or a flat array / typed array (treated as 1-D). */
export type TensorLikeInput = tf.Tensor | { shape: readonly number[]; data: ArrayLike<number> } | ArrayLike<number>;

export interface CompareOptions {
  /** Relative tolerance (relative to |expected|). Default 1e-5. */
  rtol?: number;
  /** Absolute tolerance. Default 1e-6. */
  atol?: number;
  /** Name used in messages. Default "tensor". */
  name?: string;
  /** Treat NaN == NaN as equal. Default true. */
  equalNan?: boolean;
}

export interface CompareResult {
  /** Every element satisfies |a - e| <= atol + rtol * |e|. */
  ok: boolean;
  /** max |a - e| over all elements (NaN/Inf mismatches count as Infinity). */
  maxAbs: number;
  /** max |a - e| / |e| over elements with e != 0 (Infinity if a non-zero error sits where e == 0). */
  maxRel: number;
  /** Multi-dimensional index of the element furthest outside (or closest to) its tolerance. */
  worstIndex: number[];
  worstActual: number;
  worstExpected: number;
  /** Number of elements outside tolerance. */
  count: number;
  /** Number of elements compared. */
  size: number;
  shape: number[];
}

function toData(x: TensorLikeInput, what: string): { shape: number[]; data: ArrayLike<number> } {
  if (x instanceof tf.Tensor) {
    if (x.isDisposed) throw new Error(`compareTensors: ${what} tensor is disposed`);
    return { shape: [...x.shape], data: x.dataSync() as ArrayLike<number> };
  }
  if (x && typeof x === 'object' && 'shape' in x && 'data' in x) {
    return { shape: [...x.shape], data: x.data };
  }
  if (x && typeof (x as ArrayLike<number>).length === 'number') {
    return { shape: [(x as ArrayLike<number>).length], data: x as ArrayLike<number> };
  }
  throw new Error(`compareTensors: ${what} is not a tensor, {shape, data} or array`);
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    const s = shape[d]!;
    idx[d] = flat % s;
    flat = Math.floor(flat / s);
  }
  return idx;
}

const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;

/**
 * Compares `actual` with `expected` element-wise: an element passes when
 * |a - e| <= atol + rtol * |e| (numpy.allclose), or both are NaN (equalNan), or both are the same
 * infinity. Shapes must be identical, otherwise an Error naming both shapes is thrown.
 */
export function compareTensors(actual: TensorLikeInput, expected: TensorLikeInput, opts: CompareOptions = {}): CompareResult {
  const { rtol = 1e-5, atol = 1e-6, name = 'tensor', equalNan = true } = opts;
  const a = toData(actual, 'actual');
  const e = toData(expected, 'expected');
  if (a.shape.length !== e.shape.length || a.shape.some((d, i) => d !== e.shape[i])) {
    throw new Error(`${name}: shape mismatch: actual ${fmtShape(a.shape)} vs expected ${fmtShape(e.shape)}`);
  }
  const n = a.data.length;
  if (e.data.length !== n) throw new Error(`${name}: actual has ${n} values but expected has ${e.data.length}`);
  let maxAbs = 0;
  let maxRel = 0;
  let count = 0;
  let worst = -1;
  let worstScore = -Infinity;
  for (let i = 0; i < n; i++) {
    const av = Number(a.data[i]);
    const ev = Number(e.data[i]);
    let diff: number;
    let pass: boolean;
    if (Number.isNaN(av) || Number.isNaN(ev)) {
      pass = equalNan && Number.isNaN(av) && Number.isNaN(ev);
      diff = pass ? 0 : Infinity;
    } else if (!Number.isFinite(av) || !Number.isFinite(ev)) {
      pass = av === ev;
      diff = pass ? 0 : Infinity;
    } else {
      diff = Math.abs(av - ev);
      pass = diff <= atol + rtol * Math.abs(ev);
    }
    if (!pass) count++;
    if (diff > maxAbs) maxAbs = diff;
    const rel = ev !== 0 && Number.isFinite(ev) ? diff / Math.abs(ev) : diff > 0 ? Infinity : 0;
    if (rel > maxRel) maxRel = rel;
    const tol = atol + rtol * (Number.isFinite(ev) ? Math.abs(ev) : 0);
    const score = tol > 0 ? diff / tol : diff > 0 ? Infinity : 0;
    if (score > worstScore) {
      worstScore = score;
      worst = i;
    }
  }
  return {
    ok: count === 0,
    maxAbs,
    maxRel,
    worstIndex: worst >= 0 ? unravel(worst, a.shape) : [],
    worstActual: worst >= 0 ? Number(a.data[worst]) : NaN,
    worstExpected: worst >= 0 ? Number(e.data[worst]) : NaN,
    count,
    size: n,
    shape: a.shape,
  };
}

/** Formats a failed comparison. */
export function formatCompareResult(r: CompareResult, opts: CompareOptions = {}): string {
  const { rtol = 1e-5, atol = 1e-6, name = 'tensor' } = opts;
  return (
    `${name} ${fmtShape(r.shape)}: ${r.count} of ${r.size} elements not close (rtol ${rtol}, atol ${atol}); ` +
    `max abs err ${r.maxAbs.toExponential(3)}, max rel err ${r.maxRel.toExponential(3)}; ` +
    `worst at [${r.worstIndex.join(', ')}]: actual ${r.worstActual}, expected ${r.worstExpected}`
  );
}

/** compareTensors, throwing an Error (name, shape, max abs/rel error, worst index and values) unless ok. */
export function assertClose(actual: TensorLikeInput, expected: TensorLikeInput, opts: CompareOptions = {}): CompareResult {
  const r = compareTensors(actual, expected, opts);
  if (!r.ok) throw new Error(formatCompareResult(r, opts));
  return r;
}
