// Shared test utilities: seeded inputs, cross-backend runs, tolerance checks.
import * as tf from '@tensorflow/tfjs';
import { cudaInfo, registerCudaBackend, registerNativeBackend, setCudaTf32 } from '../src/index.js';

/** Native backends under test: vlmix-cpu, plus vlmix-cuda wherever its addon is built and a GPU is present. */
export const NATIVE_BACKENDS = ['vlmix-cpu', ...(cudaInfo().available ? ['vlmix-cuda'] : [])];

/** Backends compared against tfjs 'cpu'. Extra ones via VLMIX_PARITY_BACKENDS=a,b. */
export const PARITY_BACKENDS = [...new Set([...NATIVE_BACKENDS,
  ...(process.env.VLMIX_PARITY_BACKENDS ?? '').split(',').filter(Boolean)])];

/** Whether a backend can run here, and why not. vlmix-cuda runs its matmuls in full FP32 under test
 *  (TF32 would miss the parity tolerances) unless VLMIX_TF32=1. */
export function availability(name: string): { ok: boolean; reason: string } {
  if (name === 'vlmix-cpu') return registerNativeBackend();
  if (name === 'vlmix-cuda') {
    const r = registerCudaBackend();
    if (r.ok && process.env.VLMIX_TF32 !== '1') setCudaTf32(false);
    return r;
  }
  return tf.findBackendFactory(name) ? { ok: true, reason: '' } : { ok: false, reason: `backend '${name}' is not registered` };
}

export class Rand {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    // mulberry32
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  floats(shape: number[], lo = -2, hi = 2): tf.Tensor {
    const n = tf.util.sizeFromShape(shape);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = lo + (hi - lo) * this.next();
    return tf.tensor(v, shape, 'float32');
  }
  ints(shape: number[], lo: number, hi: number): tf.Tensor {
    const n = tf.util.sizeFromShape(shape);
    const v = new Int32Array(n);
    for (let i = 0; i < n; i++) v[i] = lo + Math.floor((hi - lo) * this.next());
    return tf.tensor(v, shape, 'int32');
  }
  bools(shape: number[]): tf.Tensor {
    const n = tf.util.sizeFromShape(shape);
    const v = new Uint8Array(n);
    for (let i = 0; i < n; i++) v[i] = this.next() < 0.5 ? 1 : 0;
    return tf.tensor(v, shape, 'bool');
  }
}

export interface Result {
  shape: number[];
  dtype: string;
  values: tf.TypedArray;
}

/** Runs build() on a backend with a fresh Rand(seed); returns plain results and checks for leaks. */
export async function runOn(backend: string, seed: number, build: (r: Rand) => tf.Tensor | tf.Tensor[]): Promise<Result[]> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const outs = tf.tidy(() => {
    const o = build(new Rand(seed));
    return Array.isArray(o) ? o : [o];
  });
  const res = outs.map((t) => ({ shape: t.shape.slice(), dtype: t.dtype, values: t.dataSync() as tf.TypedArray }));
  tf.dispose(outs);
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`leaked ${after - before} tensors on ${backend}`);
  return res;
}

export function expectClose(actual: Result[], expected: Result[], rtol: number, atol: number, label: string): void {
  if (actual.length !== expected.length) throw new Error(`${label}: ${actual.length} outputs, expected ${expected.length}`);
  actual.forEach((a, k) => {
    const e = expected[k];
    const where = `${label}[${k}]`;
    if (a.dtype !== e.dtype) throw new Error(`${where}: dtype ${a.dtype}, expected ${e.dtype}`);
    if (JSON.stringify(a.shape) !== JSON.stringify(e.shape)) throw new Error(`${where}: shape [${a.shape}], expected [${e.shape}]`);
    // tfjs 'cpu' casts int32/bool -> float32 by aliasing the source array; a Float32Array is right.
    const cpuCastQuirk = e.dtype === 'float32' && a.values instanceof Float32Array;
    if (a.values.constructor !== e.values.constructor && !cpuCastQuirk) {
      throw new Error(`${where}: values are ${a.values.constructor.name}, expected ${e.values.constructor.name}`);
    }
    let worst = -1, worstErr = 0;
    for (let i = 0; i < e.values.length; i++) {
      const x = a.values[i], y = e.values[i];
      if (Number.isNaN(y) && Number.isNaN(x)) continue;
      if (x === y) continue;
      const err = Math.abs(x - y) - (atol + rtol * Math.abs(y));
      if (!(err <= 0) && (worst < 0 || err > worstErr)) { worst = i; worstErr = Number.isNaN(err) ? Infinity : err; }
    }
    if (worst >= 0) {
      throw new Error(`${where}: element ${worst} is ${a.values[worst]}, expected ${e.values[worst]} (rtol ${rtol}, atol ${atol})`);
    }
  });
}
