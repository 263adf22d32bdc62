/**
 * AdamW (PyTorch semantics, decoupled weight decay) over named variables, global-norm gradient
 * clipping and learning-rate schedules.
 */
import * as tf from '@tensorflow/tfjs';
import { fail, ops } from '@vlmix/core';

export interface NamedVariable {
  name: string;
  variable: tf.Variable;
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /**
   * Parameters exempt from weight decay. Default (nanoGPT): rank < 2, i.e. biases and norm
   * gains; matmul weights and embeddings decay.
   */
  noDecay?: (name: string, variable: tf.Variable) => boolean;
}

/** Optimizer state for checkpoints. The tensors are the optimizer's own: do not dispose them. */
export interface AdamWState {
  /** Optimizer steps taken (the next step uses step + 1 for bias correction). */
  step: number;
  m: Map<string, tf.Tensor>;
  v: Map<string, tf.Tensor>;
}

/** nanoGPT's rule: only tensors of rank >= 2 take weight decay. */
export function defaultNoDecay(_name: string, variable: tf.Variable): boolean {
  return variable.rank < 2;
}

export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly params: NamedVariable[];
  private readonly decay = new Map<string, boolean>();
  private m = new Map<string, tf.Tensor>();
  private v = new Map<string, tf.Tensor>();
  private steps = 0;

  constructor(params: NamedVariable[], opts: AdamWOptions) {
    if (!(opts.lr >= 0)) fail(`AdamW: lr must be >= 0, got ${opts.lr}`);
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    for (const [k, b] of [['beta1', this.beta1], ['beta2', this.beta2]] as const) {
      if (!(b >= 0 && b < 1)) fail(`AdamW: ${k} must be in [0, 1), got ${b}`);
    }
    const noDecay = opts.noDecay ?? defaultNoDecay;
    const seen = new Set<string>();
    for (const p of params) {
      if (seen.has(p.name)) fail(`AdamW: parameter '${p.name}' is listed twice`);
      seen.add(p.name);
      this.decay.set(p.name, !noDecay(p.name, p.variable));
      // Eager zeros (not lazy as in PyTorch) so a checkpoint always has every moment.
      this.m.set(p.name, tf.zerosLike(p.variable));
      this.v.set(p.name, tf.zerosLike(p.variable));
    }
    this.params = [...params];
  }

  get stepCount(): number {
    return this.steps;
  }

  names(): string[] {
    return this.params.map((p) => p.name);
  }

  /** Whether `name` takes weight decay. */
  decays(name: string): boolean {
    const d = this.decay.get(name);
    if (d === undefined) fail(`AdamW: unknown parameter '${name}'`);
    return d;
  }

  /**
   * One update: one multi-tensor AdamW kernel call (VlmixAdamWMulti) per ~4M parameter elements, so a
   * tiny model takes a single call (the new tensors of a call exist next to the old ones until they are
   * swapped, which bounds the extra memory). Parameters without a gradient are skipped (like PyTorch's
   * grad=None). Does not dispose `grads`.
   */
  step(grads: Map<string, tf.Tensor>, lr: number = this.lr): void {
    for (const name of grads.keys()) if (!this.decay.has(name)) fail(`AdamW.step: gradient for unknown parameter '${name}'`);
    const step = this.steps + 1;
    const hyper = { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, step };
    let batch: NamedVariable[] = [];
    let elements = 0;
    const flush = () => {
      const out = ops.adamwUpdateMulti(batch.map(({ name, variable }) => ({
        param: variable, grad: grads.get(name)!, m: this.m.get(name)!, v: this.v.get(name)!,
        weightDecay: this.decay.get(name) ? this.weightDecay : 0,
      })), { ...hyper, inPlace: true }); // the old param, m, v are disposed right below and never read again
      batch.forEach(({ name, variable }, i) => {
        const [p2, m2, v2] = out[i]!;
        variable.assign(p2);
        p2.dispose();
        this.m.get(name)!.dispose();
        this.v.get(name)!.dispose();
        this.m.set(name, m2);
        this.v.set(name, v2);
      });
      batch = [];
      elements = 0;
    };
    for (const p of this.params) {
      if (!grads.has(p.name)) continue;
      batch.push(p);
      elements += p.variable.size;
      if (elements >= AdamW.ELEMENTS_PER_CALL) flush();
    }
    if (batch.length) flush();
    this.steps = step;
  }

  /** Parameter elements per multi-tensor kernel call (see step). */
  static readonly ELEMENTS_PER_CALL = 1 << 22;

  state(): AdamWState {
    return { step: this.steps, m: new Map(this.m), v: new Map(this.v) };
  }

  /** Replaces the state with copies of `state`'s tensors (the caller keeps ownership of its own). */
  loadState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) fail(`AdamW.loadState: step must be an integer >= 0, got ${state.step}`);
    for (const { name, variable } of this.params) {
      for (const [which, src] of [['m', state.m], ['v', state.v]] as const) {
        const t = src.get(name);
        if (!t) fail(`AdamW.loadState: missing ${which} for parameter '${name}'`);
        if (t.shape.length !== variable.shape.length || t.shape.some((d, i) => d !== variable.shape[i])) {
          fail(`AdamW.loadState: ${which} of '${name}' has shape [${t.shape}], parameter has [${variable.shape}]`);
        }
      }
    }
    for (const { name } of this.params) {
      this.m.get(name)!.dispose();
      this.v.get(name)!.dispose();
      this.m.set(name, tf.tidy(() => tf.cast(state.m.get(name)!, 'float32').clone()));
      this.v.set(name, tf.tidy(() => tf.cast(state.v.get(name)!, 'float32').clone()));
    }
    this.steps = state.step;
  }

  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Global L2 norm over all gradients (as float32 on the device, then read back). */
export function globalGradNorm(grads: Map<string, tf.Tensor> | tf.Tensor[]): number {
  const list = grads instanceof Map ? [...grads.values()] : grads;
  if (list.length === 0) return 0;
  // one kernel call (VlmixSumSquares), the bits of tf.addN(list.map((g) => tf.sum(tf.square(g))))
  return tf.tidy(() => tf.sqrt(ops.sumSquares(list)).dataSync()[0]!);
}

/**
 * PyTorch `clip_grad_norm_`: norm = global L2 norm; if maxNorm / (norm + 1e-6) < 1 every gradient
 * is scaled by that factor. Returns a new Map; when scaled it holds new tensors (the input ones
 * are left alone), otherwise the same tensors. `norm` is the norm before clipping.
 */
export function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): { grads: Map<string, tf.Tensor>; norm: number; clipped: boolean } {
  if (!(maxNorm > 0)) fail(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const norm = globalGradNorm(grads);
  const coef = maxNorm / (norm + 1e-6);
  if (!(coef < 1)) return { grads: new Map(grads), norm, clipped: false };
  const out = new Map<string, tf.Tensor>();
  for (const [k, g] of grads) out.set(k, tf.mul(g, coef));
  return { grads: out, norm, clipped: true };
}

/**
 * A schedule described by data, so a checkpoint can store it and a resumed (or extended) run can
 * rebuild exactly the same function (scheduleFromSpec).
 */
export type ScheduleSpec =
  | { kind: 'constant'; lr: number }
  | { kind: 'warmupCosine'; lr: number; warmupSteps: number; totalSteps: number; minLr: number };

/**
 * Learning rate for a 0-based optimizer step index (nanoGPT's `it`). The built-in schedules carry
 * their `spec`; a plain function works too, but then a checkpoint cannot record it.
 */
export type LrSchedule = ((step: number) => number) & { readonly spec?: ScheduleSpec };

export function constantLr(lr: number): LrSchedule {
  return Object.assign(() => lr, { spec: { kind: 'constant', lr } as ScheduleSpec });
}

export interface WarmupCosineOptions {
  lr: number;
  warmupSteps: number;
  /** Step at which the cosine reaches minLr (nanoGPT's lr_decay_iters); minLr afterwards. */
  totalSteps: number;
  minLr?: number;
}

/**
 * nanoGPT's get_lr: linear warmup from 0 (lr * it / warmupSteps), then cosine decay from lr to
 * minLr at totalSteps, then minLr (so a run trained past totalSteps holds the final lr).
 */
export function warmupCosine(opts: WarmupCosineOptions): LrSchedule {
  const { lr, warmupSteps, totalSteps } = opts;
  const minLr = opts.minLr ?? 0;
  if (!(warmupSteps >= 0) || !(totalSteps >= warmupSteps)) {
    fail(`warmupCosine: need 0 <= warmupSteps <= totalSteps, got warmupSteps ${warmupSteps}, totalSteps ${totalSteps}`);
  }
  const f = (it: number) => {
    if (it < warmupSteps) return (lr * it) / warmupSteps;
    if (it > totalSteps || totalSteps === warmupSteps) return it === warmupSteps ? lr : minLr;
    const ratio = (it - warmupSteps) / (totalSteps - warmupSteps);
    const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio));
    return minLr + coeff * (lr - minLr);
  };
  return Object.assign(f, { spec: { kind: 'warmupCosine', lr, warmupSteps, totalSteps, minLr } as ScheduleSpec });
}

/** The schedule a spec describes (e.g. the one stored in a checkpoint). */
export function scheduleFromSpec(spec: ScheduleSpec): LrSchedule {
  if (spec?.kind === 'constant') return constantLr(spec.lr);
  if (spec?.kind === 'warmupCosine') return warmupCosine(spec);
  return fail(`scheduleFromSpec: unknown schedule ${JSON.stringify(spec)} (expected kind 'constant' or 'warmupCosine')`);
}

/** One line for messages: "warmup-cosine (peak 0.001, 10 warmup steps, to 0.0001 at step 100)". */
export function describeSchedule(spec: ScheduleSpec): string {
  return spec.kind === 'constant'
    ? `constant lr ${spec.lr}`
    : `warmup-cosine (peak lr ${spec.lr}, ${spec.warmupSteps} warmup steps, down to ${spec.minLr} at step ${spec.totalSteps}, then held)`;
}

/** Whether two specs describe the same schedule. */
export function sameSchedule(a: ScheduleSpec, b: ScheduleSpec): boolean {
  return JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
}
