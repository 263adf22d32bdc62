/**
 * CogAgent's high-resolution branch (Hong et al. 2023): a second, small vision tower encodes a high-resolution
 * copy of the image (its VisionEncoderMixin writes `featuresKey`), and every decoder layer cross-attends to those
 * features after its self-attention:
 *   h' = h + attn(norm(h));  h'' = h' + dense(softmax(q kᵀ / √d) v),  q = query(rmsnorm(h')),  [k, v] = key_value(feats)
 * with h the un-normed residual stream (ctx.residual; attentionForward itself receives norm(h))
 * (a chain on attentionForward returning attn + cross, so the layer's residual add gives h''). No gate: the
 * reference adds it directly. Names as CogAgent's layers: `cross_attn.query` [C_x, hidden],
 * `cross_attn.key_value` [2 C_x, C_enc], `cross_attn.dense` [hidden, C_x] (no biases),
 * `post_cross_attention_layernorm.weight`, under `transformer.layers.N.`.
 */
import * as tf from '@tensorflow/tfjs';
import { Mixin, fail, normal, ones, ops, stateKey, type HookImpls, type HookName, type Model, type StateKey } from '@vlmix/core';

export interface HighResCrossAttentionOptions {
  /** State key of the high-res tower's features [B, N, encoderSize]. */
  featuresKey: string;
  encoderSize: number;
  /** Width of the cross-attention (cross_hidden_size). */
  crossHiddenSize: number;
  heads: number;
}

export class HighResCrossAttentionMixin extends Mixin {
  readonly opts: HighResCrossAttentionOptions;
  readonly key: StateKey<tf.Tensor3D>;

  constructor(opts: HighResCrossAttentionOptions) {
    super();
    this.recordOptions(opts);
    for (const k of ['encoderSize', 'crossHiddenSize', 'heads'] as const) {
      if (!Number.isInteger(opts?.[k]) || opts[k] < 1) fail(`high-res cross-attention: ${k} must be a positive integer, got ${JSON.stringify(opts?.[k])}`);
    }
    if (opts.crossHiddenSize % opts.heads !== 0) fail(`high-res cross-attention: crossHiddenSize ${opts.crossHiddenSize} must be divisible by heads ${opts.heads}`);
    this.opts = opts;
    this.key = stateKey<tf.Tensor3D>(opts.featuresKey);
  }

  override attach(model: Model): void {
    const { hiddenSize: d, numLayers } = model.config;
    const { crossHiddenSize: x, encoderSize: e } = this.opts;
    const c = { component: this.name };
    for (let l = 0; l < numLayers; l++) {
      const p = `transformer.layers.${l}.`;
      model.params.create(`${p}cross_attn.query.weight`, [x, d], normal(1 / Math.sqrt(d)), c);
      model.params.create(`${p}cross_attn.key_value.weight`, [2 * x, e], normal(1 / Math.sqrt(e)), c);
      model.params.create(`${p}cross_attn.dense.weight`, [d, x], normal(0.02), c);
      model.params.create(`${p}post_cross_attention_layernorm.weight`, [d], ones, c);
    }
  }

  /** Wraps whatever serves attentionForward (the base, or a visual expert): a plain hook, so declared. */
  override overrides(): HookName[] {
    return ['attentionForward'];
  }

  hooks(): HookImpls {
    return {
      attentionForward: (h, ctx, next) => {
        const attn = next(h, ctx);
        const feats = ctx.state.get(this.key);
        if (feats == null) return attn; // no high-res image in this pass
        const p = ctx.layerPrefix;
        const { crossHiddenSize: x, heads } = this.opts;
        return tf.tidy(() => {
          const [b, t] = h.shape as [number, number];
          const n = feats.shape[1]!;
          const dh = x / heads;
          const split = (v: tf.Tensor, len: number) => tf.transpose(tf.reshape(v, [b, len, heads, dh]), [0, 2, 1, 3]);
          // what the layer's residual add will give: the un-normed residual stream + attn (h here is normed)
          const hx = tf.add(ctx.residual ?? h, attn);
          const q = split(ops.linear(ops.rmsNorm(hx, ctx.param(`${p}post_cross_attention_layernorm.weight`), ctx.config.normEps), ctx.param(`${p}cross_attn.query.weight`), null), t);
          const [k, v] = tf.split(ops.linear(feats, ctx.param(`${p}cross_attn.key_value.weight`), null), 2, -1);
          const out = ops.attention(q, split(k!, n), split(v!, n), { bias: null, causal: false });
          const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b, t, x]);
          return tf.add(attn, ops.linear(merged, ctx.param(`${p}cross_attn.dense.weight`), null));
        });
      },
    };
  }
}
