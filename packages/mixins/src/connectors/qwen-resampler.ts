/**
 * Qwen-VL's vision-language adapter (Bai et al. 2023): one cross-attention layer (torch
 * nn.MultiheadAttention) from Q learned queries to the ViT's patch features, with the fixed 2-D sin-cos
 * position table added to the queries (its own grid) and to the keys (the patch grid); then ln_post and
 * the projection `proj` to the LM width (Qwen-VL's VisionTransformer tail). Reference names (under
 * `transformer.visual.`): attn_pool.{query, pos_embed, kv_proj, ln_q, ln_kv, attn.in_proj_weight,
 * attn.in_proj_bias, attn.out_proj}, ln_post, proj. The query grid must equal the patch grid here (the
 * reference resizes the table bicubically otherwise: not written).
 */
import * as tf from '@tensorflow/tfjs';
import { fail, normal, ones, ops, zeros, type Model } from '@vlmix/core';
import { ImageTokenMixin, type ImageTokenOptions } from './projectors.js';

export interface QwenResamplerOptions extends ImageTokenOptions {
  /** Query grid side: grid^2 queries (16 -> 256 in the reference). */
  grid: number;
  /** Width of the cross-attention (embed_dim). */
  embedDim: number;
  heads: number;
  /** Vision feature width (kv_dim); a kv_proj maps it to embedDim when they differ. */
  kvDim: number;
}

/** MAE's get_2d_sincos_pos_embed as Qwen-VL uses it: [grid*grid, D]; the first half of the channels from the column, the second from the row. */
export function qwenSincos2d(grid: number, d: number): Float32Array {
  const half = d / 2;
  const q = half / 2;
  const out = new Float32Array(grid * grid * d);
  const put = (row: number, off: number, pos: number) => {
    for (let i = 0; i < q; i++) {
      const w = 1 / Math.pow(10000, i / q);
      out[row * d + off + i] = Math.sin(pos * w);
      out[row * d + off + q + i] = Math.cos(pos * w);
    }
  };
  for (let y = 0; y < grid; y++) {
    for (let x = 0; x < grid; x++) {
      put(y * grid + x, 0, x); // meshgrid(grid_w, grid_h)[0]: the column
      put(y * grid + x, half, y);
    }
  }
  return out;
}

export class QwenResamplerMixin extends ImageTokenMixin {
  readonly opts: QwenResamplerOptions;

  constructor(opts: QwenResamplerOptions) {
    super(opts);
    this.recordOptions(opts);
    for (const k of ['grid', 'embedDim', 'heads', 'kvDim'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 1) fail(`qwen resampler: ${k} must be a positive integer, got ${JSON.stringify(opts[k])}`);
    }
    if (opts.embedDim % opts.heads !== 0 || opts.embedDim % 4 !== 0) fail(`qwen resampler: embedDim ${opts.embedDim} must be divisible by heads (${opts.heads}) and by 4`);
    this.opts = opts;
  }

  override attach(model: Model): void {
    this.checkTokenId(model);
    const { grid, embedDim: e, kvDim } = this.opts;
    const d = model.config.hiddenSize;
    const c = { component: this.name };
    const p = (n: string) => `${this.name}.${n}`;
    model.params.create(p('attn_pool.query'), [grid * grid, e], normal(0.02), c);
    model.params.create(p('attn_pool.pos_embed'), [grid * grid, e], { kind: 'values', values: qwenSincos2d(grid, e) }, c);
    model.params.freeze(p('attn_pool.pos_embed')); // fixed in the reference (requires_grad False)
    if (kvDim !== e) model.params.create(p('attn_pool.kv_proj.weight'), [e, kvDim], normal(1 / Math.sqrt(kvDim)), c);
    for (const ln of ['attn_pool.ln_q', 'attn_pool.ln_kv', 'ln_post']) {
      model.params.create(p(`${ln}.weight`), [e], ones, c);
      model.params.create(p(`${ln}.bias`), [e], zeros, c);
    }
    model.params.create(p('attn_pool.attn.in_proj_weight'), [3 * e, e], normal(1 / Math.sqrt(e)), c);
    model.params.create(p('attn_pool.attn.in_proj_bias'), [3 * e], zeros, c);
    model.params.create(p('attn_pool.attn.out_proj.weight'), [e, e], normal(1 / Math.sqrt(e)), c);
    model.params.create(p('attn_pool.attn.out_proj.bias'), [e], zeros, c);
    model.params.create(p('proj'), [e, d], normal(1 / Math.sqrt(e)), c); // x @ proj
  }

  /** Patch features [B, N, kvDim] (N = grid^2) -> [B, grid^2, D]. */
  imageTokens(features: tf.Tensor): tf.Tensor {
    const m = this.model;
    const { grid, embedDim: e, heads, kvDim } = this.opts;
    const [b, n] = features.shape as [number, number, number];
    if (n !== grid * grid) fail(`qwen resampler: ${n} patch features, expected the ${grid}x${grid} grid of the queries (${grid * grid})`);
    const p = (k: string) => m.param(`${this.name}.${k}`);
    return tf.tidy(() => {
      let x = kvDim !== e ? ops.linear(features, p('attn_pool.kv_proj.weight'), null) : features;
      x = ops.layerNorm(x, p('attn_pool.ln_kv.weight'), p('attn_pool.ln_kv.bias'), 1e-5);
      const pos = p('attn_pool.pos_embed');
      const q = tf.add(ops.layerNorm(p('attn_pool.query'), p('attn_pool.ln_q.weight'), p('attn_pool.ln_q.bias'), 1e-5), pos); // [Q, E]
      const [wq, wk, wv] = tf.split(p('attn_pool.attn.in_proj_weight'), 3, 0);
      const [bq, bk, bv] = tf.split(p('attn_pool.attn.in_proj_bias'), 3, 0);
      const dh = e / heads;
      const heads4 = (t: tf.Tensor, len: number) => tf.transpose(tf.reshape(t, [b, len, heads, dh]), [0, 2, 1, 3]);
      const qh = heads4(tf.broadcastTo(ops.linear(q, wq!, bq!), [b, grid * grid, e]), grid * grid);
      const kh = heads4(ops.linear(tf.add(x, pos), wk!, bk!), n);
      const vh = heads4(ops.linear(x, wv!, bv!), n);
      const att = tf.matMul(tf.softmax(tf.mul(tf.matMul(qh, kh, false, true), 1 / Math.sqrt(dh))), vh); // [B, H, Q, dh]
      let out = ops.linear(tf.reshape(tf.transpose(att, [0, 2, 1, 3]), [b, grid * grid, e]), p('attn_pool.attn.out_proj.weight'), p('attn_pool.attn.out_proj.bias'));
      out = ops.layerNorm(out, p('ln_post.weight'), p('ln_post.bias'), 1e-5);
      // as 2-D: a [B, Q, E] x [E, D] batched matmul has no gradient for the shared matrix in tfjs
      return tf.reshape(tf.matMul(tf.reshape(out, [b * grid * grid, e]), p('proj')), [b, grid * grid, -1]);
    });
  }
}
