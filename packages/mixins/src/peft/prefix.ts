/**
 * Prefix tuning / P-tuning v2 (Li & Liang 2021; Liu et al. 2022) after SAT's `PrefixTuningMixin`: every
 * layer owns learned keys and values of length `prefixLen`, joined to k and v in `attentionFn` (chain
 * hook, which receives the pass's mask as its fourth argument, as SAT's attention_fn) so that every query
 * attends to them.
 *
 * Parameters: `<mixin>.prefix.<layer>` [2, Hkv, prefixLen, headDim] (index 0 = keys, 1 = values),
 * normal(0, 0.01) like SAT's `randn(...) * 0.01`. Component = the mixin's name.
 *
 * The prefix is *prepended* (SAT appends; the result is the same up to key order, which attention does not
 * depend on). Prepending keeps the core fused kernel's causal rule right without a mask: query i sees key
 * j iff j <= i + (Tk - Tq), and with P prefix keys in front that offset grows by P, so every query sees the
 * whole prefix and exactly the keys it saw before. An additive bias (padding, prefix-LM, custom masks)
 * gets P zero columns in front. The prefix is not stored in the KV cache (it is added on each pass).
 */
import * as tf from '@tensorflow/tfjs';
import { Mixin, fail, type HookImpls, type HookName, type Model } from '@vlmix/core';

export interface PrefixTuningOptions {
  /** Prefix keys/values per layer (> 0). */
  prefixLen: number;
  /** Restrict to these layer indices (default: every layer). */
  layers?: number[];
  /** Std of the normal initialisation (default 0.01, as SAT). */
  initStd?: number;
}

export class PrefixTuningMixin extends Mixin {
  readonly prefixLen: number;
  readonly initStd: number;
  readonly layers: Set<number> | null;

  constructor(opts: PrefixTuningOptions) {
    super();
    this.recordOptions(opts);
    if (!opts || typeof opts !== 'object') fail(`PrefixTuningMixin: expected options {prefixLen}, got ${JSON.stringify(opts)}`);
    if (!Number.isInteger(opts.prefixLen) || opts.prefixLen <= 0) {
      fail(`prefix.prefixLen: expected a positive integer (a prefix of length 0 adds nothing; do not add the mixin), got ${JSON.stringify(opts.prefixLen)}`);
    }
    this.prefixLen = opts.prefixLen;
    this.initStd = opts.initStd ?? 0.01;
    if (!(this.initStd >= 0)) fail(`prefix.initStd: expected a number >= 0, got ${JSON.stringify(opts.initStd)}`);
    if (opts.layers != null) {
      if (!Array.isArray(opts.layers) || opts.layers.some((l) => !Number.isInteger(l) || l < 0)) {
        fail(`prefix.layers: expected an array of layer indices, got ${JSON.stringify(opts.layers)}`);
      }
      this.layers = new Set(opts.layers);
    } else this.layers = null;
  }

  /** Parameter name of layer `l`'s prefix. */
  paramName(l: number): string {
    return `${this.name}.prefix.${l}`;
  }

  override appliesTo(_hook: HookName, layer: number): boolean {
    return this.layers == null || this.layers.has(layer);
  }

  override attach(model: Model): void {
    const cfg = model.config;
    for (let l = 0; l < cfg.numLayers; l++) {
      if (!this.appliesTo('attentionFn', l)) continue;
      model.params.create(this.paramName(l), [2, cfg.numKvHeads, this.prefixLen, cfg.headDim], { kind: 'normal', std: this.initStd }, { component: this.name });
    }
    if (this.layers) for (const l of this.layers) if (l >= cfg.numLayers) fail(`prefix.layers: layer ${l} out of range; the model has ${cfg.numLayers} layers`);
  }

  /** [B|1, H|1, Tq|1, Tk] bias -> [.., P + Tk] with zeros (visible) in front. */
  static extendBias(bias: tf.Tensor, p: number): tf.Tensor {
    return tf.tidy(() => {
      const [b, h, q] = bias.shape as number[];
      return tf.concat([tf.zeros([b!, h!, q!, p]), bias], 3);
    });
  }

  hooks(): HookImpls {
    return {
      attentionFn: (q, k, v, mask, ctx, next) => {
        const prefix = ctx.param(this.paramName(ctx.layer));
        const [b, hkv, , d] = k.shape as number[];
        const want = [2, hkv, this.prefixLen, d];
        if (prefix.rank !== 4 || want.some((s, i) => s !== prefix.shape[i])) {
          fail(`prefix: layer ${ctx.layer}: parameter ${this.paramName(ctx.layer)} has shape [${prefix.shape}], keys need [${want}]`);
        }
        const [pk, pv] = tf.unstack(prefix, 0) as [tf.Tensor, tf.Tensor];
        const tileB = (t: tf.Tensor) => tf.tile(tf.expandDims(t, 0), [b!, 1, 1, 1]);
        const k2 = tf.concat([tileB(pk), k], 2);
        const v2 = tf.concat([tileB(pv), v], 2);
        // the prefix keys are visible to every query: the causal offset grows by P by itself, a bias gets P zero columns
        const m2 = mask.bias ? { causal: mask.causal, bias: PrefixTuningMixin.extendBias(mask.bias, this.prefixLen) } : mask;
        return next(q, k2, v2, m2, ctx);
      },
    };
  }
}
