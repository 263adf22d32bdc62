/**
 * Rotary position embedding (RoPE) as a mixin serving `positionIds` (the sequential positions, continued
 * from the cache) and `applyRotary`.
 * style 'half' (GPT-NeoX / HF Llama): q*cos + rotate_half(q)*sin, rotate_half(x) = cat(-x[d/2:], x[:d/2]).
 * style 'interleaved' (llama2.c / Meta): pairs (2i, 2i+1) rotated as complex numbers.
 *
 * It lives in core (positions/, beside the M-RoPE math) because createLlama adds it and core imports no
 * other vlmix package; `@vlmix/mixins` re-exports it with the M-RoPE mixin.
 * Serving `positionIds` makes position rules visible in the hook table: a mixin with its own position ids
 * (CogVLM's visual expert, M-RoPE) must declare `overrides()` to take them over, or addMixin fails.
 */
import * as tf from '@tensorflow/tfjs';
import type { ForwardContext } from '../context.js';
import { fail } from '../errors.js';
import type { HookImpls } from '../hooks.js';
import { Mixin } from '../mixin.js';
import type { Model } from '../model.js';
import * as ops from '../ops/index.js';
import { stateKey, type StateKey } from '../state.js';

export interface RotaryOptions {
  /** Frequency base (theta). */
  base?: number;
  style?: 'half' | 'interleaved';
  /** Rotated channels per head (partial rotary); defaults to the head dimension. */
  dim?: number;
}

/** inv_freq[i] = 1 / base^(2i / dim), rounded to float32 like torch's float32 computation. */
export function rotaryInvFreq(dim: number, base: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = 1 / Math.pow(base, Math.fround((2 * i) / dim));
  return out;
}

/** Angles position * inv_freq: positions [...], -> [..., dim/2] float32. */
export function rotaryAngles(positions: tf.Tensor, invFreq: Float32Array): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.expandDims(tf.cast(positions, 'float32'), -1), tf.tensor1d(invFreq)));
}

/** x [..., D] with cos/sin [..., D] (already duplicated halves): x*cos + rotate_half(x)*sin. */
export function applyRotaryHalf(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1]!;
    const [x1, x2] = tf.split(x, [d / 2, d / 2], -1);
    const rotated = tf.concat([tf.neg(x2!), x1!], -1);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
  });
}

/** x [..., D] with cos/sin [..., D/2]: pairs (2i, 2i+1) rotated by angle i. */
export function applyRotaryInterleaved(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const shape = x.shape;
    const d = shape[shape.length - 1]!;
    const pairs = tf.reshape(x, [...shape.slice(0, -1), d / 2, 2]);
    const [even, odd] = tf.split(pairs, 2, -1).map((t) => tf.squeeze(t, [-1]));
    const re = tf.sub(tf.mul(even!, cos), tf.mul(odd!, sin));
    const im = tf.add(tf.mul(even!, sin), tf.mul(odd!, cos));
    return tf.reshape(tf.stack([re, im], -1), shape);
  });
}

export class RotaryMixin extends Mixin {
  readonly base: number;
  readonly style: 'half' | 'interleaved';
  dim = 0;
  private invFreq: Float32Array = new Float32Array(0);
  private cosSinKey: StateKey<{ cos: tf.Tensor; sin: tf.Tensor }> = stateKey('rope.cosSin');

  constructor(opts: RotaryOptions = {}) {
    super();
    this.recordOptions(opts);
    this.base = opts.base ?? 10000;
    this.style = opts.style ?? 'half';
    if (this.style !== 'half' && this.style !== 'interleaved') fail(`rotary.style: expected 'half' or 'interleaved', got ${JSON.stringify(this.style)}`);
    if (opts.dim != null) this.dim = opts.dim;
  }

  override attach(model: Model): void {
    const hd = model.config.headDim;
    if (this.dim === 0) this.dim = hd;
    if (this.dim % 2 !== 0 || this.dim > hd) fail(`rotary.dim: expected an even number <= headDim ${hd}, got ${this.dim}`);
    this.invFreq = rotaryInvFreq(this.dim, this.base);
    this.cosSinKey = stateKey(`${this.name}.cosSin`);
  }

  /** cos and sin [B, T, dim/2] of the angles at positions [B, T]. */
  cosSin(positions: tf.Tensor): { cos: tf.Tensor; sin: tf.Tensor } {
    return tf.tidy(() => {
      const ang = rotaryAngles(positions, this.invFreq);
      return { cos: tf.cos(ang), sin: tf.sin(ang) };
    });
  }

  /** Rotates [B, H, T, D] given positions [B, T] (the first `dim` channels; the rest pass through). */
  rotate(x: tf.Tensor, positions: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const { cos, sin } = this.cosSin(positions);
      return ops.rotary(x, cos, sin, this.style);
    });
  }

  /** This pass's angles (RotaryAnglesProvider: the base rotates q and k in the QKV split's kernel with them). */
  rotaryAngles(ctx: ForwardContext): { cos: tf.Tensor; sin: tf.Tensor; style: 'half' | 'interleaved' } {
    if (ctx.positionIds.rank !== 2) fail(`rotary: expected positionIds [B, T], got rank ${ctx.positionIds.rank} (use the M-RoPE mixin for [3, B, T])`);
    // cos/sin depend only on the positions: computed once per pass, shared by q, k and every layer
    const { cos, sin } = ctx.state.memo(this.cosSinKey, () => this.cosSin(ctx.positionIds));
    return { cos, sin, style: this.style };
  }

  hooks(): HookImpls {
    return {
      // 1-D positions pastLength + 0..T-1: what the base computes; serving the hook claims it (see above).
      positionIds: (host, next) => next(host),
      applyRotary: (q: tf.Tensor, k: tf.Tensor, ctx: ForwardContext): [tf.Tensor, tf.Tensor] => {
        const { cos, sin, style } = this.rotaryAngles(ctx);
        return [ops.rotary(q, cos, sin, style), ops.rotary(k, cos, sin, style)];
      },
    };
  }
}
