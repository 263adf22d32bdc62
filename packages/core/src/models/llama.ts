/** LLaMA: RMSNorm, SwiGLU, rotary positions (a mixin), grouped-query attention, no biases. */
import * as tf from '@tensorflow/tfjs';
import type { TransformerConfigInput } from '../config.js';
import { Model } from '../model.js';
import { RotaryMixin, type RotaryOptions } from '../positions/rope.js';
import { names } from '../transformer.js';
import { fail } from '../errors.js';
import { dropouts, hfBool, hfRate, hfInt, hfNumber, hfString, type HfConfig } from './hf-config.js';
import { applyWeightMap, type WeightMap, type WeightSource } from './weight-map.js';

export function llamaConfig(c: Partial<TransformerConfigInput> = {}): TransformerConfigInput {
  return {
    vocabSize: 32000, hiddenSize: 4096, numLayers: 32, numHeads: 32, maxSeqLen: 4096,
    norm: 'rmsnorm', normEps: 1e-6, normOrder: 'pre', activation: 'swiglu',
    positionEmbedding: 'none', bias: false, tieEmbeddings: false, mask: 'causal', initStd: 0.02,
    intermediateSize: 11008,
    ...c,
  };
}

/** A LLaMA-style model: the base transformer configured as above plus a `rope` mixin. */
export function createLlama(c: Partial<TransformerConfigInput> = {}, rope: RotaryOptions = {}): Model {
  const m = new Model(llamaConfig(c));
  m.addMixin('rope', new RotaryMixin(rope));
  return m;
}

function take(src: Map<string, tf.Tensor>, name: string): tf.Tensor {
  const t = src.get(name);
  if (!t) fail(`LLaMA checkpoint: missing tensor '${name}'`);
  return t;
}

/**
 * llama2.c (`model.py`) names -> vlmix names. wq/wk/wv are stacked into query_key_value (rows q, k, v);
 * w1 is the gate, w3 the up projection. Use RotaryMixin({style: 'interleaved'}) with these weights.
 */
export function llamaFromLlama2c(src: Map<string, tf.Tensor>, numLayers: number, tied: boolean): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const C = (n: string) => take(src, n).clone();
  out.set(names.wordEmbeddings, C('tok_embeddings.weight'));
  for (let l = 0; l < numLayers; l++) {
    const s = `layers.${l}.`;
    const p = (x: string) => names.layer(l, x);
    out.set(p('attention.query_key_value.weight'),
      tf.concat([take(src, `${s}attention.wq.weight`), take(src, `${s}attention.wk.weight`), take(src, `${s}attention.wv.weight`)], 0));
    out.set(p('attention.dense.weight'), C(`${s}attention.wo.weight`));
    out.set(p('mlp.dense_h_to_4h_gate.weight'), C(`${s}feed_forward.w1.weight`));
    out.set(p('mlp.dense_h_to_4h.weight'), C(`${s}feed_forward.w3.weight`));
    out.set(p('mlp.dense_4h_to_h.weight'), C(`${s}feed_forward.w2.weight`));
    out.set(p('input_layernorm.weight'), C(`${s}attention_norm.weight`));
    out.set(p('post_attention_layernorm.weight'), C(`${s}ffn_norm.weight`));
  }
  out.set(`${names.finalNorm}.weight`, C('norm.weight'));
  if (!tied) out.set(`${names.lmHead}.weight`, C('output.weight'));
  return out;
}

export interface LlamaMapOptions {
  numLayers: number;
  tied: boolean;
  /** Biases on q/k/v_proj (Qwen2). Default = bias. */
  qkvBias?: boolean;
  /** Biases on every projection (LlamaConfig attention_bias + mlp_bias). Default false. */
  bias?: boolean;
  /** What precedes `layers.{l}`, `embed_tokens`, `norm`: 'model.' (LlamaForCausalLM) by default. */
  prefix?: string;
}

/**
 * Weight map for HF LlamaForCausalLM-style checkpoints (LLaMA, SmolLM, TinyLlama, Qwen2). q/k/v_proj
 * (and their biases for Qwen2) are stacked into query_key_value (rows q, k, v; GQA needs nothing else);
 * gate/up/down_proj are dense_h_to_4h_gate / dense_h_to_4h / dense_4h_to_h. Dropped on purpose:
 * `rotary_emb.inv_freq` buffers (older checkpoints store them; RoPE recomputes them from rope_theta)
 * and, when tied, `lm_head.weight` (HF ties it to embed_tokens and ignores the stored copy).
 */
export function llamaWeightMap(o: LlamaMapOptions): WeightMap {
  const pre = o.prefix ?? 'model.';
  const t = new Map<string, WeightSource>();
  t.set(names.wordEmbeddings, { from: `${pre}embed_tokens.weight` });
  for (let l = 0; l < o.numLayers; l++) {
    const s = `${pre}layers.${l}.`;
    const p = (x: string) => names.layer(l, x);
    const qkv = (kind: string) => ['q', 'k', 'v'].map((c) => `${s}self_attn.${c}_proj.${kind}`);
    t.set(p('attention.query_key_value.weight'), { concat: qkv('weight') });
    if (o.qkvBias ?? o.bias) t.set(p('attention.query_key_value.bias'), { concat: qkv('bias') });
    const lin = (dst: string, src: string) => {
      t.set(p(`${dst}.weight`), { from: `${s}${src}.weight` });
      if (o.bias) t.set(p(`${dst}.bias`), { from: `${s}${src}.bias` });
    };
    lin('attention.dense', 'self_attn.o_proj');
    lin('mlp.dense_h_to_4h_gate', 'mlp.gate_proj');
    lin('mlp.dense_h_to_4h', 'mlp.up_proj');
    lin('mlp.dense_4h_to_h', 'mlp.down_proj');
    t.set(p('input_layernorm.weight'), { from: `${s}input_layernorm.weight` });
    t.set(p('post_attention_layernorm.weight'), { from: `${s}post_attention_layernorm.weight` });
  }
  t.set(`${names.finalNorm}.weight`, { from: `${pre}norm.weight` });
  if (!o.tied) t.set(`${names.lmHead}.weight`, { from: 'lm_head.weight' });
  const skip = [{ test: (n: string) => n.endsWith('.rotary_emb.inv_freq'), why: 'rotary_emb.inv_freq buffers (recomputed from rope_theta)' }];
  if (o.tied) skip.push({ test: (n: string) => n === 'lm_head.weight', why: 'lm_head.weight (tied to embed_tokens)' });
  return { source: o.qkvBias ? 'HF Qwen2ForCausalLM' : 'HF LlamaForCausalLM', targets: t, skip };
}

/** Hugging Face LlamaForCausalLM names -> vlmix names (rotate-half RoPE, the default style). New tensors; dispose them. */
export function llamaFromHF(src: Map<string, tf.Tensor>, numLayers: number, tied: boolean): Map<string, tf.Tensor> {
  return applyWeightMap(llamaWeightMap({ numLayers, tied }), src);
}

/** The rope_theta of an HF config: `rope_theta`, or `rope_parameters.rope_theta` (newer transformers). */
function ropeTheta(cfg: HfConfig, w: string): number {
  const params = cfg.rope_parameters as HfConfig | undefined | null;
  for (const scaling of [cfg.rope_scaling, params]) {
    if (scaling === undefined || scaling === null) continue;
    const kind = (scaling as HfConfig).rope_type ?? (scaling as HfConfig).type ?? 'default';
    if (kind !== 'default') fail(`${w}: RoPE scaling ${JSON.stringify(kind)} is not supported (only plain RoPE, rope_type "default")`);
  }
  if (params && typeof params === 'object' && params.rope_theta !== undefined) return hfNumber(params, 'rope_theta', 10000, `${w} rope_parameters`);
  return hfNumber(cfg, 'rope_theta', 10000, w);
}

/**
 * vlmix config + rotary options of an HF LlamaConfig / Qwen2Config (defaults are theirs). Sizes,
 * GQA heads, head_dim, rms_norm_eps, rope_theta, tie_word_embeddings and attention biases all come
 * from the file; settings vlmix does not implement (RoPE scaling, sliding windows, o_proj bias without
 * MLP bias, activations other than SiLU) are errors that name the field.
 */
export function llamaConfigFromHF(cfg: HfConfig, kind: 'llama' | 'qwen2' = 'llama'): { config: TransformerConfigInput; rope: RotaryOptions } {
  const w = `config.json (${kind})`;
  const act = hfString(cfg, 'hidden_act', 'silu', w);
  if (act !== 'silu') fail(`${w}: "hidden_act" = ${JSON.stringify(act)} is not supported (only "silu", i.e. SwiGLU)`);
  const hiddenSize = hfInt(cfg, 'hidden_size', undefined, w);
  const numHeads = hfInt(cfg, 'num_attention_heads', undefined, w);
  let bias = false;
  let qkvBias = false;
  if (kind === 'qwen2') {
    qkvBias = true; // Qwen2Attention: q/k/v_proj bias=True, o_proj bias=False, MLP without bias
    if (hfBool(cfg, 'use_sliding_window', false, w)) fail(`${w}: "use_sliding_window" = true is not supported (sliding-window attention)`);
  } else {
    const attnBias = hfBool(cfg, 'attention_bias', false, w);
    const mlpBias = hfBool(cfg, 'mlp_bias', false, w);
    if (attnBias !== mlpBias) fail(`${w}: "attention_bias" = ${attnBias} with "mlp_bias" = ${mlpBias} is not supported (vlmix biases all linears or none)`);
    bias = qkvBias = attnBias;
  }
  const config = llamaConfig({
    vocabSize: hfInt(cfg, 'vocab_size', undefined, w),
    hiddenSize,
    numLayers: hfInt(cfg, 'num_hidden_layers', undefined, w),
    numHeads,
    numKvHeads: hfInt(cfg, 'num_key_value_heads', numHeads, w),
    headDim: hfInt(cfg, 'head_dim', hiddenSize / numHeads, w),
    intermediateSize: hfInt(cfg, 'intermediate_size', undefined, w),
    maxSeqLen: hfInt(cfg, 'max_position_embeddings', kind === 'qwen2' ? 32768 : 2048, w),
    normEps: hfNumber(cfg, 'rms_norm_eps', 1e-6, w),
    tieEmbeddings: hfBool(cfg, 'tie_word_embeddings', false, w),
    bias,
    qkvBias,
    initStd: hfNumber(cfg, 'initializer_range', 0.02, w),
    ...dropouts({ attentionDropout: hfRate(cfg, 'attention_dropout', 0, w) }),
  });
  return { config, rope: { base: ropeTheta(cfg, w), style: 'half' } };
}
