/**
 * LLaMA-Adapter (Zhang et al. 2023) as HF PEFT's AdaptionPromptModel: in each of the top `layers` layers a
 * learned adaption prompt [len, hidden] is projected by the layer's own key/value projections; the layer's
 * (rotated) queries attend to it in a separate softmax, scaled by a zero-initialised gate, and the result
 * goes through the attention's output projection and is added to the attention output:
 *   out = attn(h) + dense(gate * softmax(q k_p^T / sqrt(d)) v_p)
 * With the gate at 0 (its init) the model is exactly the base model. v2 adds the visual feature to the
 * prompt (`visualKey`: a state key of [B, hidden] features, e.g. a projected CLIP embedding).
 * Names (PEFT): `<layer>.adaption_prompt` [1, len, hidden], `<layer>.adaption_gate` [1], under
 * `transformer.layers.N.attention.`.
 */
import * as tf from '@tensorflow/tfjs';
import { Mixin, fail, normal, ops, splitQkv, zeros, type HookImpls, type HookName, type Model, type StateKey } from '@vlmix/core';

export interface LlamaAdapterOptions {
  /** Adapted layers: the top `layers` (PEFT adapter_layers). */
  layers: number;
  /** Prompt length (PEFT adapter_len). */
  length: number;
  /** Initial gate (default 0, the paper's zero-init gating). */
  gateInit?: number;
  /** v2: state key of [B, hidden] visual features added to every prompt position. */
  visualKey?: StateKey<tf.Tensor2D>;
}

export class LlamaAdapterMixin extends Mixin {
  readonly opts: LlamaAdapterOptions;
  private first = 0;

  constructor(opts: LlamaAdapterOptions) {
    super();
    this.recordOptions(opts);
    for (const k of ['layers', 'length'] as const) {
      if (!Number.isInteger(opts?.[k]) || opts[k] < 1) fail(`llama-adapter: ${k} must be a positive integer, got ${JSON.stringify(opts?.[k])}`);
    }
    this.opts = opts;
  }

  prefix(l: number): string {
    return `transformer.layers.${l}.attention.`;
  }

  override appliesTo(_hook: HookName, layer: number): boolean {
    return layer >= this.first;
  }

  override attach(model: Model): void {
    const cfg = model.config;
    if (this.opts.layers > cfg.numLayers) fail(`llama-adapter: layers ${this.opts.layers} exceeds the model's ${cfg.numLayers} layers`);
    this.first = cfg.numLayers - this.opts.layers;
    for (let l = this.first; l < cfg.numLayers; l++) {
      model.params.create(`${this.prefix(l)}adaption_prompt`, [1, this.opts.length, cfg.hiddenSize], normal(0.02), { component: this.name });
      model.params.create(`${this.prefix(l)}adaption_gate`, [1], this.opts.gateInit ? { kind: 'constant', value: this.opts.gateInit } : zeros, { component: this.name });
    }
  }

  /** Wraps whatever serves attentionForward (the base, or a visual expert): a plain hook, so declared. */
  override overrides(): HookName[] {
    return ['attentionForward'];
  }

  hooks(): HookImpls {
    return {
      attentionForward: (h, ctx, next) => {
        const out = next(h, ctx);
        const cfg = ctx.config;
        const p = this.prefix(ctx.layer);
        return tf.tidy(() => {
          const [b, t] = h.shape as [number, number];
          let prompt: tf.Tensor = tf.tile(ctx.param(`${p}adaption_prompt`), [b, 1, 1]); // [B, len, C]
          const visual = this.opts.visualKey ? ctx.state.get(this.opts.visualKey) : null;
          if (visual) prompt = tf.add(prompt, tf.expandDims(visual, 1));
          // the layer's own projections: rotated queries of the tokens, keys/values of the prompt (no rotation)
          let [q, k] = splitQkv(ctx.run('linear', `${p}query_key_value`, h), cfg);
          [q] = ctx.run('applyRotary', q, k!);
          const [, kp, vp] = splitQkv(ctx.run('linear', `${p}query_key_value`, prompt), cfg);
          const rep = cfg.numHeads / cfg.numKvHeads;
          const heads = (x: tf.Tensor) => (rep === 1 ? x : tf.gather(x, Array.from({ length: cfg.numHeads }, (_, i) => Math.floor(i / rep)), 1));
          const scores = tf.mul(tf.matMul(q!, heads(kp!), false, true), 1 / Math.sqrt(cfg.headDim));
          const gated = tf.mul(tf.matMul(tf.softmax(scores), heads(vp!)), ctx.param(`${p}adaption_gate`)); // [B, H, T, D]
          const merged = tf.reshape(tf.transpose(gated, [0, 2, 1, 3]), [b, t, cfg.numHeads * cfg.headDim]);
          return tf.add(out, ctx.run('linear', `${p}dense`, merged));
        });
      },
    };
  }
}

/**
 * LLaMA-Adapter v2's visual prompt: the vision features [B, N, Cv] mean-pooled and projected to the LM width
 * (`<mixin>.visual_proj`), written to `key` for LlamaAdapterMixin's `visualKey` (added to every prompt).
 */
export class AdapterVisualPromptMixin extends Mixin {
  constructor(readonly inputSize: number, readonly featuresKey: StateKey<tf.Tensor3D>, readonly key: StateKey<tf.Tensor2D>) {
    super();
    this.recordOptions({ inputSize, featuresKey, key });
    if (!Number.isInteger(inputSize) || inputSize < 1) fail(`adapter visual prompt: inputSize must be a positive integer, got ${JSON.stringify(inputSize)}`);
  }

  override attach(model: Model): void {
    const d = model.config.hiddenSize;
    model.params.create(`${this.name}.visual_proj.weight`, [d, this.inputSize], normal(1 / Math.sqrt(this.inputSize)), { component: this.name });
    model.params.create(`${this.name}.visual_proj.bias`, [d], zeros, { component: this.name });
  }

  hooks(): HookImpls {
    return {
      encodeMedia: (state, ctx, next) => {
        const out = next(state, ctx);
        const feats = out.get(this.featuresKey);
        if (feats == null) return out;
        const v = tf.tidy(() => ops.linear(tf.mean(feats, 1), ctx.param(`${this.name}.visual_proj.weight`), ctx.param(`${this.name}.visual_proj.bias`)) as tf.Tensor2D);
        return out.with(this.key, v, this.name);
      },
    };
  }
}
