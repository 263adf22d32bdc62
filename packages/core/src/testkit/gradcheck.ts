// Finite-difference gradient checking for functions of tf.Tensors.
import * as tf from '@tensorflow/tfjs';
import { mulberry32, normals, sampleIndices } from './rng.js';

export interface GradCheckOptions {
  /** Finite-difference half step (absolute, applied in float32). Default 1e-3. */
  eps?: number;
  /** Relative tolerance, relative to max(|analytic|, |numeric|) + the input's gradient RMS. Default 1e-2. */
  rtol?: number;
  /** Absolute tolerance. Default 1e-5. */
  atol?: number;
  /** Coordinates checked per input (seeded random subset; all if the input is smaller). Default 64. */
  maxChecks?: number;
  /** Seed for the output projection and the coordinate subset. Default 0. */
  seed?: number;
  /** Indices of the inputs to check. Default: every float32 input. */
  wrt?: number[];
  /**
   * Multiplier on the estimated float32 round-off of the finite difference (see README). Default 16.
   * Set 0 to disable the round-off allowance.
   */
  noiseFactor?: number;
}

export interface GradCheckPoint {
  /** Index of the input in `inputs`. */
  input: number;
  /** Multi-dimensional index of the coordinate. */
  index: number[];
  flatIndex: number;
  analytic: number;
  numeric: number;
  absErr: number;
  /** |analytic - numeric| / (max(|analytic|, |numeric|) + gradient RMS of that input). */
  relErr: number;
  /** The tolerance this coordinate was held to (atol + rtol * scale + round-off allowance). */
  tol: number;
}

export interface GradCheckReport {
  ok: boolean;
  /** The coordinate with the largest error relative to its tolerance (null if nothing was checked). */
  worst: GradCheckPoint | null;
  /** Number of coordinates checked. */
  checked: number;
  /** Number of coordinates outside tolerance. */
  failures: number;
  /** Per checked input: its index, shape, gradient RMS and number of coordinates checked. */
  inputs: { input: number; shape: number[]; gradRms: number; checked: number }[];
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    const s = shape[d]!;
    idx[d] = s === 0 ? 0 : flat % s;
    flat = s === 0 ? 0 : Math.floor(flat / s);
  }
  return idx;
}

const F32_EPS = 2 ** -24;

/**
 * Compares the analytic gradients of `f` (via tf.grads) with central finite differences.
 *
 * `f`'s output is reduced to a scalar `L = sum(f(x) * P)` with a fixed, seeded standard-normal
 * projection P. For a seeded random subset of coordinates of each checked input, f is evaluated at
 * x ± eps (in float32; the effective step is the difference of the rounded float32 values) and
 * L is accumulated in float64. A coordinate passes when
 *   |analytic - numeric| <= atol + rtol * (max(|analytic|, |numeric|) + gradRms) + roundoff
 * where gradRms is the RMS of the input's analytic gradient and roundoff estimates the float32
 * error of the difference from the outputs that changed. `f` must be deterministic and smooth near
 * the inputs. Tensors created here are disposed; `inputs` are not modified.
 */
export function checkGradients(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  opts: GradCheckOptions = {},
): GradCheckReport {
  const { eps = 1e-3, rtol = 1e-2, atol = 1e-5, maxChecks = 64, seed = 0, noiseFactor = 16 } = opts;
  if (!Array.isArray(inputs) || inputs.length === 0) throw new Error('checkGradients: inputs must be a non-empty array of tensors');
  inputs.forEach((t, i) => {
    if (!(t instanceof tf.Tensor)) throw new Error(`checkGradients: inputs[${i}] is not a tf.Tensor`);
    if (t.isDisposed) throw new Error(`checkGradients: inputs[${i}] is disposed`);
  });
  if (!(eps > 0)) throw new Error(`checkGradients: eps must be > 0, got ${eps}`);
  const wrt = opts.wrt ?? inputs.map((t, i) => (t.dtype === 'float32' ? i : -1)).filter((i) => i >= 0);
  for (const i of wrt) {
    if (!Number.isInteger(i) || i < 0 || i >= inputs.length) throw new Error(`checkGradients: wrt index ${i} is out of range (0..${inputs.length - 1})`);
    if (inputs[i]!.dtype !== 'float32') throw new Error(`checkGradients: inputs[${i}] has dtype ${inputs[i]!.dtype}; only float32 inputs can be checked`);
  }
  if (wrt.length === 0) throw new Error('checkGradients: no float32 input to check');

  const rand = mulberry32(seed);
  const evalOut = (xs: tf.Tensor[]): { data: Float32Array; shape: number[] } => {
    let res: { data: Float32Array; shape: number[] } | undefined;
    tf.tidy(() => {
      const y = f(...xs);
      if (!(y instanceof tf.Tensor)) throw new Error('checkGradients: f must return a tf.Tensor');
      if (y.dtype !== 'float32') throw new Error(`checkGradients: f must return a float32 tensor, got ${y.dtype}`);
      res = { data: (y.dataSync() as Float32Array).slice(), shape: [...y.shape] };
    });
    return res!;
  };

  const y0 = evalOut(inputs);
  const proj64 = normals(rand, y0.data.length);
  const proj = Float32Array.from(proj64); // the analytic path uses float32 P; use the same values below

  // Analytic gradients w.r.t. the checked inputs.
  const analytic: Float32Array[] = [];
  tf.tidy(() => {
    const P = tf.tensor(proj, y0.shape, 'float32');
    const g = tf.grads((...sel: tf.Tensor[]) => {
      const xs = inputs.slice();
      wrt.forEach((w, k) => (xs[w] = sel[k]!));
      return tf.sum(tf.mul(f(...xs), P));
    });
    let grads: tf.Tensor[];
    try {
      grads = g(wrt.map((w) => inputs[w]!));
    } catch (err) {
      throw new Error(`checkGradients: computing analytic gradients with tf.grads failed (does f use every checked input? pass wrt to choose): ${(err as Error).message}`);
    }
    for (const gr of grads) analytic.push(gr.dataSync().slice() as Float32Array);
  });

  const project = (out: Float32Array): number => {
    let s = 0;
    for (let k = 0; k < out.length; k++) s += out[k]! * proj[k]!;
    return s;
  };

  let worst: GradCheckPoint | null = null;
  let worstExcess = -Infinity;
  let checked = 0;
  let failures = 0;
  const perInput: GradCheckReport['inputs'] = [];

  wrt.forEach((w, k) => {
    const x = inputs[w]!;
    const base = x.dataSync().slice() as Float32Array;
    const grad = analytic[k]!;
    let ss = 0;
    for (let j = 0; j < grad.length; j++) ss += grad[j]! * grad[j]!;
    const gradRms = grad.length ? Math.sqrt(ss / grad.length) : 0;
    const coords = sampleIndices(rand, base.length, maxChecks);
    perInput.push({ input: w, shape: [...x.shape], gradRms, checked: coords.length });

    const evalAt = (flat: number, value: number): Float32Array => {
      const buf = base.slice();
      buf[flat] = value;
      const xs = inputs.slice();
      let out: Float32Array | undefined;
      tf.tidy(() => {
        xs[w] = tf.tensor(buf, x.shape, 'float32');
        out = evalOut(xs).data;
      });
      return out!;
    };

    for (const flat of coords) {
      const x0 = base[flat]!;
      const xp = Math.fround(x0 + eps);
      const xm = Math.fround(x0 - eps);
      const step = xp - xm;
      const op = evalAt(flat, xp);
      const om = evalAt(flat, xm);
      const numeric = (project(op) - project(om)) / step;
      let changed = 0;
      for (let j = 0; j < op.length; j++) {
        if (op[j] !== om[j]) changed += Math.abs(proj[j]!) * Math.max(Math.abs(op[j]!), Math.abs(om[j]!));
      }
      const roundoff = (noiseFactor * F32_EPS * changed) / step;
      const a = grad[flat]!;
      const absErr = Math.abs(a - numeric);
      const scale = Math.max(Math.abs(a), Math.abs(numeric)) + gradRms;
      const tol = atol + rtol * scale + roundoff;
      const relErr = scale > 0 ? absErr / scale : absErr === 0 ? 0 : Infinity;
      const bad = !(absErr <= tol); // NaN fails
      if (bad) failures++;
      checked++;
      const excess = Number.isNaN(absErr) ? Infinity : absErr / tol;
      if (excess > worstExcess) {
        worstExcess = excess;
        worst = { input: w, index: unravel(flat, x.shape), flatIndex: flat, analytic: a, numeric, absErr, relErr, tol };
      }
    }
  });

  return { ok: failures === 0, worst, checked, failures, inputs: perInput };
}

/** Formats a gradient-check report for error messages. */
export function formatGradCheckReport(r: GradCheckReport): string {
  const lines = [`gradient check ${r.ok ? 'passed' : 'FAILED'}: ${r.failures} of ${r.checked} coordinates outside tolerance`];
  const w = r.worst;
  if (w) {
    lines.push(
      `  worst: input ${w.input} at [${w.index.join(', ')}]: analytic ${w.analytic.toPrecision(7)}, numeric ${w.numeric.toPrecision(7)}, ` +
        `abs err ${w.absErr.toExponential(3)}, rel err ${w.relErr.toExponential(3)} (tolerance ${w.tol.toExponential(3)})`,
    );
  }
  for (const i of r.inputs) {
    lines.push(`  input ${i.input} shape [${i.shape.join(', ')}]: ${i.checked} coordinates, gradient RMS ${i.gradRms.toExponential(3)}`);
  }
  return lines.join('\n');
}

/** Like checkGradients, but throws an Error containing the report when the check fails. Returns the report otherwise. */
export function assertGradients(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  opts: GradCheckOptions & { label?: string } = {},
): GradCheckReport {
  const r = checkGradients(f, inputs, opts);
  if (!r.ok) throw new Error(`${opts.label ? `${opts.label}: ` : ''}${formatGradCheckReport(r)}`);
  return r;
}
