/**
 * The base transformer: its parameters and the default implementation of every hook. A forward pass is
 *   host stage (once per batch): tokenTypes, positionIds, hostInputs    (the caller's, or sequential positions)
 *   features = encodeMedia(hostInputs)                                    (base: nothing to encode)
 *   h = wordEmbedding(ids); h = positionEmbedding(h)
 *   for each layer: h = layerForward(h)
 *       layerForward: h = crossAttentionForward(h); h = h + attentionForward(norm(h)); h = h + mlpForward(norm(h))
 *   logits = finalForward(h)            (final norm + head)
 * with norm placement per config.normOrder.
 */
import * as tf from '@tensorflow/tfjs';
import type { TransformerConfig } from './config.js';
import { ForwardContext } from './context.js';
import { consume } from './free.js';
import type { HookImpls } from './hooks.js';
import { sequentialPositions } from './host.js';
import { normal, ones, zeros } from './init.js';
import * as ops from './ops/index.js';
import type { ParamStore } from './params.js';
import { MASK_VALUE, type AttentionMask } from './masks.js';

/** Parameter names of the base (SAT style). */
export const names = {
  wordEmbeddings: 'transformer.word_embeddings.weight',
  positionEmbeddings: 'transformer.position_embeddings.weight',
  finalNorm: 'transformer.final_layernorm',
  lmHead: 'lm_head',
  layer: (l: number, local: string) => `transformer.layers.${l}.${local}`,
};

/** Creates the base's parameters. Output projections get std / sqrt(2 * layers) as in GPT-2. */
export function createBaseParams(cfg: TransformerConfig, params: ParamStore): void {
  const std = cfg.initStd;
  const projStd = std / Math.sqrt(2 * cfg.numLayers);
  const C = cfg.hiddenSize;
  const norm = (base: string, component: string) => {
    params.create(`${base}.weight`, [C], ones, { component });
    if (cfg.norm === 'layernorm') params.create(`${base}.bias`, [C], zeros, { component });
  };
  const linear = (base: string, out: number, inF: number, s: number, bias = cfg.bias) => {
    params.create(`${base}.weight`, [out, inF], normal(s), { component: 'transformer.layers' });
    if (bias) params.create(`${base}.bias`, [out], zeros, { component: 'transformer.layers' });
  };
  params.create(names.wordEmbeddings, [cfg.vocabSize, C], normal(std), { component: 'transformer.embeddings' });
  if (cfg.positionEmbedding === 'learned') {
    params.create(names.positionEmbeddings, [cfg.maxSeqLen, C], normal(std / 2), { component: 'transformer.embeddings' });
  }
  const qkvOut = (cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim;
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = (s: string) => names.layer(l, s);
    norm(p('input_layernorm'), 'transformer.layers');
    linear(p('attention.query_key_value'), qkvOut, C, std, cfg.qkvBias);
    linear(p('attention.dense'), C, cfg.numHeads * cfg.headDim, projStd);
    norm(p('post_attention_layernorm'), 'transformer.layers');
    if (cfg.normOrder === 'sandwich') {
      norm(p('third_layernorm'), 'transformer.layers');
      norm(p('fourth_layernorm'), 'transformer.layers');
    }
    linear(p('mlp.dense_h_to_4h'), cfg.intermediateSize, C, std);
    if (cfg.activation === 'swiglu') linear(p('mlp.dense_h_to_4h_gate'), cfg.intermediateSize, C, std);
    linear(p('mlp.dense_4h_to_h'), C, cfg.intermediateSize, projStd);
  }
  if (cfg.finalNorm) norm(names.finalNorm, 'transformer.final');
  if (!cfg.tieEmbeddings) {
    params.create(`${names.lmHead}.weight`, [cfg.vocabSize, C], normal(std), { component: 'lm_head' });
  }
}

/**
 * The base finalForward up to its head: the final norm (recorded as the pass's finalHidden) and the head's
 * weight [V, C] (the word embeddings when tied). Model.loss fuses the head with the loss from here.
 */
export function baseFinalHidden(h: tf.Tensor, ctx: ForwardContext): { hidden: tf.Tensor; head: tf.Tensor } {
  const hidden = ctx.config.finalNorm ? applyNorm(ctx, names.finalNorm, h) : h;
  ctx.outputs.finalHidden = hidden;
  return { hidden, head: ctx.param(ctx.config.tieEmbeddings ? names.wordEmbeddings : `${names.lmHead}.weight`) };
}

/** Applies the configured norm with parameters `<base>.weight` (and `.bias` for LayerNorm). */
export function applyNorm(ctx: ForwardContext, base: string, x: tf.Tensor): tf.Tensor {
  const cfg = ctx.config;
  if (cfg.norm === 'rmsnorm') return ops.rmsNorm(x, ctx.param(`${base}.weight`), cfg.normEps);
  return ops.layerNorm(x, ctx.param(`${base}.weight`), ctx.param(`${base}.bias`), cfg.normEps);
}

/** [a + b, norm(a + b)] with the configured norm's parameters `<base>.*`, in one kernel (ops.addLayerNorm / addRmsNorm). */
export function applyAddNorm(ctx: ForwardContext, base: string, a: tf.Tensor, b: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const cfg = ctx.config;
  if (cfg.norm === 'rmsnorm') return ops.addRmsNorm(a, b, ctx.param(`${base}.weight`), cfg.normEps);
  return ops.addLayerNorm(a, b, ctx.param(`${base}.weight`), ctx.param(`${base}.bias`), cfg.normEps);
}

/** [B, T, H*D] -> [B, H, T, D] */
export function splitHeads(x: tf.Tensor, heads: number, headDim: number): tf.Tensor {
  return ops.splitHeads(x, [heads], headDim)[0]!;
}

/** [B, H, T, D] -> [B, T, H*D] */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  return ops.mergeHeads(x);
}

/** The base's linear: `<name>.weight` [out, in] and optional `<name>.bias`; with `activation`, fused with it. */
export function baseLinear(name: string, x: tf.Tensor, ctx: ForwardContext, activation?: ops.kernels.FusedActivation): tf.Tensor {
  const b = `${name}.bias`;
  return ops.linear(x, ctx.param(`${name}.weight`), ctx.host.hasParam(b) ? ctx.param(b) : null, activation);
}

/** Splits a fused [.., (Hq + 2 Hkv) * D] projection into q, k, v heads. */
export function splitQkv(qkv: tf.Tensor, cfg: TransformerConfig): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const [q, k, v] = ops.splitHeads(qkv, [cfg.numHeads, cfg.numKvHeads, cfg.numKvHeads], cfg.headDim);
  return [q!, k!, v!];
}

/**
 * What a mixin serving `applyRotary` offers so that the base can rotate q and k inside the QKV split's kernel
 * (ops.splitHeadsRotary): its applyRotary must be exactly [ops.rotary(q, cos, sin, style), ops.rotary(k, cos,
 * sin, style)] with these angles, never calling next. The rope and M-RoPE mixins offer it.
 */
export interface RotaryAnglesProvider {
  rotaryAngles(ctx: ForwardContext): { cos: tf.Tensor; sin: tf.Tensor; style: 'half' | 'interleaved' };
}

function rotaryProvider(ctx: ForwardContext): RotaryAnglesProvider | null {
  const server = ctx.outermostServer('applyRotary') as Partial<RotaryAnglesProvider> | null;
  return server && typeof server.rotaryAngles === 'function' ? (server as RotaryAnglesProvider) : null;
}

/**
 * q, k and v heads of a fused QKV projection with q and k rotated by the `applyRotary` hook: in the split's own
 * kernel when the mixin serving the hook offers its angles (RotaryAnglesProvider), else split, then the hook.
 * Then call attendHeads(q, k, v, ctx, true).
 */
export function qkvHeads(qkv: tf.Tensor, ctx: ForwardContext): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const cfg = ctx.config;
  const rope = rotaryProvider(ctx);
  if (!rope) {
    const [q, k, v] = splitQkv(qkv, cfg);
    const [qr, kr] = ctx.run('applyRotary', q, k);
    for (const [t, r] of [[q, qr], [k, kr]] as const) if (t !== r) t.dispose(); // transients go once read (free.ts)
    return [qr, kr, v];
  }
  const { cos, sin, style } = rope.rotaryAngles(ctx);
  const [q, k, v] = ops.splitHeadsRotary(qkv, [cfg.numHeads, cfg.numKvHeads, cfg.numKvHeads], cfg.headDim, cos, sin, style);
  return [q!, k!, v!];
}

/**
 * Self-attention given q, k, v heads: rotary (unless `rotated`: qkvHeads did it), KV cache, attentionFn. Shared by
 * attention variants.
 */
export function attendHeads(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, ctx: ForwardContext, rotated = false): tf.Tensor {
  if (!rotated) [q, k] = ctx.run('applyRotary', q, k);
  if (ctx.cache) [k, v] = ctx.cache.append(ctx.layer, k, v);
  return mergeHeads(ctx.run('attentionFn', q, k, v, ctx.attention));
}

const DROPOUT_SITES = { embeddings: 1, attentionProbs: 2, attentionOutput: 3, mlpOutput: 4 } as const;

/**
 * Inverted dropout (zero with probability `rate`, scale the rest by 1 / (1 - rate)) in training passes
 * only; the mask is seeded by the pass's dropoutSeed, the layer and the site, so a pass is reproducible.
 */
export function dropout(x: tf.Tensor, rate: number | undefined, ctx: ForwardContext, site: keyof typeof DROPOUT_SITES): tf.Tensor {
  if (!ctx.training || !rate) return x;
  const seed = ((ctx.dropoutSeed * 1009 + (ctx.layer + 1)) * 8 + DROPOUT_SITES[site]) % 2147483647;
  return tf.dropout(x, rate, undefined, seed);
}

/**
 * Attention with dropout on the probabilities (training with config.attentionDropout > 0): the composite
 * softmax(q k^T / sqrt(d) + mask) -> dropout -> @ v, since the fused kernel has no dropout.
 */
function attentionWithDropout(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: AttentionMask, ctx: ForwardContext): tf.Tensor {
  const [hq, hk] = [q.shape[1]!, k.shape[1]!];
  if (hq !== hk) { // grouped-query attention: each k/v head serves hq / hk query heads
    const heads = tf.tensor1d(Array.from({ length: hq }, (_, i) => Math.floor(i / (hq / hk))), 'int32');
    [k, v] = [tf.gather(k, heads, 1), tf.gather(v, heads, 1)];
  }
  const [tq, tk] = [q.shape[2]!, k.shape[2]!];
  let s = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(q.shape[3]!));
  if (mask.bias) s = tf.add(s, mask.bias);
  if (mask.causal) {
    const allowed = tf.linalg.bandPart(tf.ones([tq, tk]), -1, tk - tq);
    s = tf.add(s, tf.mul(tf.sub(1, allowed), MASK_VALUE));
  }
  return tf.matMul(dropout(tf.softmax(s), ctx.config.attentionDropout, ctx, 'attentionProbs'), v);
}

/** The MLP nonlinearity of config.activation applied to the up projection; `gate` is only computed for SwiGLU. */
export function mlpActivation(ctx: ForwardContext, up: tf.Tensor, gate: () => tf.Tensor): tf.Tensor {
  switch (ctx.config.activation) {
    case 'swiglu':
      return ops.swiglu(gate(), up);
    case 'gelu':
      return ops.gelu(up, 'none');
    case 'gelu_tanh':
      return ops.gelu(up, 'tanh');
    case 'relu':
      return tf.relu(up);
  }
}

/** config.activation -> the activation ops.linear fuses (SwiGLU has two projections: not fused). */
const FUSED_ACTIVATION: Partial<Record<TransformerConfig['activation'], ops.kernels.FusedActivation>> = {
  gelu: 'gelu', gelu_tanh: 'gelu_tanh', relu: 'relu',
};

/**
 * The MLP with linears `<prefix>dense_h_to_4h`, `<prefix>dense_h_to_4h_gate` (SwiGLU) and `<prefix>dense_4h_to_h`
 * through the linear hook: the base's (prefix `<layer>mlp.`) and, e.g., CogVLM's vision expert's.
 */
export function mlpBlock(ctx: ForwardContext, prefix: string, h: tf.Tensor): tf.Tensor {
  const fused = FUSED_ACTIVATION[ctx.config.activation];
  if (fused && ctx.servedByBase('linear')) { // the up projection and its activation in one kernel
    return consume(baseLinear(`${prefix}dense_h_to_4h`, h, ctx, fused), (a) => ctx.run('linear', `${prefix}dense_4h_to_h`, a));
  }
  const up = ctx.run('linear', `${prefix}dense_h_to_4h`, h);
  let gate: tf.Tensor | null = null;
  const act = mlpActivation(ctx, up, () => (gate = ctx.run('linear', `${prefix}dense_h_to_4h_gate`, h)));
  // transients go once read (free.ts): the MLP's peak is up, gate and their product, as in PyTorch
  for (const t of [up, gate as tf.Tensor | null]) if (t && t !== act && t !== h) t.dispose();
  return consume(act, (a) => ctx.run('linear', `${prefix}dense_4h_to_h`, a));
}

export const baseHooks: Required<HookImpls> = {
  tokenTypes: (host) => host.givenTokenTypes,

  positionIds: (host) => host.givenPositionIds ?? sequentialPositions(host.batch, host.seqLen, host.pastLength),

  hostInputs: (inputs) => inputs,

  encodeMedia: (features) => features,

  wordEmbedding: (ids, ctx) => tf.gather(ctx.param(names.wordEmbeddings), ids),

  positionEmbedding: (h, ctx) => {
    const drop = (x: tf.Tensor) => dropout(x, ctx.config.embeddingDropout, ctx, 'embeddings');
    if (ctx.config.positionEmbedding !== 'learned') return drop(h);
    if (ctx.positionIds.rank !== 2) return drop(h);
    return drop(tf.add(h, tf.gather(ctx.param(names.positionEmbeddings), ctx.positionIds)));
  },

  applyRotary: (q, k) => [q, k],

  attentionFn: (q, k, v, mask, ctx) => (ctx.training && ctx.config.attentionDropout
    ? attentionWithDropout(q, k, v, mask, ctx)
    : ops.attention(q, k, v, { bias: mask.bias, causal: mask.causal })),

  attentionForward: (h, ctx) => {
    const qkv = ctx.run('linear', `${ctx.layerPrefix}attention.query_key_value`, h);
    const [q, k, v] = qkvHeads(qkv, ctx);
    if (qkv !== h) qkv.dispose(); // transients go once read (free.ts)
    return consume(attendHeads(q, k, v, ctx, true), (o) => ctx.run('linear', `${ctx.layerPrefix}attention.dense`, o));
  },

  crossAttentionForward: (h) => h,

  mlpForward: (h, ctx) => mlpBlock(ctx, `${ctx.layerPrefix}mlp.`, h),

  linear: (name, x, ctx) => baseLinear(name, x, ctx),

  layerForward: (h, ctx) => {
    const p = ctx.layerPrefix;
    const order = ctx.config.normOrder;
    h = ctx.run('crossAttentionForward', h);
    const rate = ctx.config.hiddenDropout;
    const residual = (r: tf.Tensor | null) => ForwardContext.setResidual(ctx, r);
    if (order === 'post') {
      // norm(x + block(x)); the block's output and the sum go once read (free.ts), x stays
      const post = (x: tf.Tensor, hook: 'attentionForward' | 'mlpForward', site: 'attentionOutput' | 'mlpOutput', norm: string) => {
        const out = ctx.run(hook, x);
        const dropped = dropout(out, rate, ctx, site);
        const [sum, normed] = applyAddNorm(ctx, `${p}${norm}`, x, dropped);
        for (const t of new Set([out, dropped, sum])) if (t !== x) t.dispose();
        return normed;
      };
      residual(h);
      h = post(h, 'attentionForward', 'attentionOutput', 'input_layernorm');
      residual(h);
      const out = post(h, 'mlpForward', 'mlpOutput', 'post_attention_layernorm');
      residual(null);
      return out;
    }
    // pre-norm: each transient (normed input, block output) goes once read (free.ts); x, the layer's input, stays
    const sandwich = (name: string) => (y: tf.Tensor) => (order === 'sandwich' ? applyNorm(ctx, `${p}${name}`, y) : y);
    const x = h;
    residual(x);
    const attended = consume(applyNorm(ctx, `${p}input_layernorm`, x), (n) => ctx.run('attentionForward', n), sandwich('third_layernorm'),
      (a) => dropout(a, rate, ctx, 'attentionOutput'));
    // the residual add and the next norm in one kernel
    const [sum, normed] = applyAddNorm(ctx, `${p}post_attention_layernorm`, x, attended);
    if (attended !== x) attended.dispose();
    h = sum;
    residual(h);
    const out = consume(normed, (n) => ctx.run('mlpForward', n), sandwich('fourth_layernorm'),
      (m) => dropout(m, rate, ctx, 'mlpOutput'), (m) => tf.add(h, m));
    residual(null);
    return out;
  },

  finalForward: (h, ctx) => {
    const { hidden, head } = baseFinalHidden(h, ctx);
    return ops.linear(hidden, head);
  },
};
