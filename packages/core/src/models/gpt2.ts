/**
 * GPT-2: learned positions, pre-LayerNorm, GELU, tied embeddings. Two checkpoint sources share the
 * architecture and the `transformer.h.{l}.attn.c_attn` names but differ in two ways that matter:
 *  - HF `GPT2LMHeadModel` / the hub's `gpt2` files: Conv1D layers store weights [in, out] (transposed
 *    on load), GELU is `gelu_new` (the tanh approximation), and the hub's original files have no
 *    `transformer.` prefix and carry the `attn.bias` / `attn.masked_bias` buffers.
 *  - nanoGPT (karpathy/nanoGPT model.py): nn.Linear stores [out, in] (copied as is), GELU is
 *    nn.GELU() (exact, erf), `bias=False` drops every Linear and LayerNorm bias.
 */
import * as tf from '@tensorflow/tfjs';
import type { Activation, TransformerConfigInput } from '../config.js';
import { fail } from '../errors.js';
import { Model } from '../model.js';
import { names } from '../transformer.js';
import { dropouts, hfBool, hfRate, hfInt, hfNumber, hfRequire, hfString, type HfConfig } from './hf-config.js';
import { applyWeightMap, type WeightMap, type WeightSource } from './weight-map.js';

export function gpt2Config(c: Partial<TransformerConfigInput> = {}): TransformerConfigInput {
  return {
    vocabSize: 50257, hiddenSize: 768, numLayers: 12, numHeads: 12, maxSeqLen: 1024,
    norm: 'layernorm', normEps: 1e-5, normOrder: 'pre', activation: 'gelu_tanh',
    positionEmbedding: 'learned', bias: true, tieEmbeddings: true, mask: 'causal', initStd: 0.02,
    ...c,
  };
}

export function createGpt2(c: Partial<TransformerConfigInput> = {}): Model {
  return new Model(gpt2Config(c));
}

/** HF `activation_function` -> vlmix activation. gelu_new / gelu_pytorch_tanh / gelu_fast are the tanh form. */
const HF_GELU: Record<string, Activation> = {
  gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', gelu_fast: 'gelu_tanh', gelu: 'gelu', relu: 'relu',
};

/** vlmix config of an HF `GPT2Config` (config.json, model_type "gpt2"); defaults are GPT2Config's. */
export function gpt2ConfigFromHF(cfg: HfConfig): TransformerConfigInput {
  const w = 'config.json (gpt2)';
  const act = hfString(cfg, 'activation_function', 'gelu_new', w);
  const activation = HF_GELU[act];
  if (!activation) fail(`${w}: "activation_function" = ${JSON.stringify(act)} is not supported (one of ${Object.keys(HF_GELU).join(', ')})`);
  hfRequire(cfg, 'scale_attn_weights', true, w);
  hfRequire(cfg, 'scale_attn_by_inverse_layer_idx', false, w);
  hfRequire(cfg, 'add_cross_attention', false, w);
  const hiddenSize = hfInt(cfg, 'n_embd', 768, w);
  return gpt2Config({
    vocabSize: hfInt(cfg, 'vocab_size', 50257, w),
    hiddenSize,
    numLayers: hfInt(cfg, 'n_layer', 12, w),
    numHeads: hfInt(cfg, 'n_head', 12, w),
    intermediateSize: hfInt(cfg, 'n_inner', 4 * hiddenSize, w),
    maxSeqLen: hfInt(cfg, 'n_positions', hfInt(cfg, 'n_ctx', 1024, w), w),
    normEps: hfNumber(cfg, 'layer_norm_epsilon', 1e-5, w),
    activation,
    tieEmbeddings: hfBool(cfg, 'tie_word_embeddings', true, w),
    initStd: hfNumber(cfg, 'initializer_range', 0.02, w),
    // GPT2Config's defaults are 0.1 each (training passes only)
    ...dropouts({ attentionDropout: hfRate(cfg, 'attn_pdrop', 0.1, w), hiddenDropout: hfRate(cfg, 'resid_pdrop', 0.1, w), embeddingDropout: hfRate(cfg, 'embd_pdrop', 0.1, w) }),
  });
}


/**
 * vlmix config of a nanoGPT checkpoint: config.json holds the checkpoint's `model_args` (GPTConfig:
 * block_size, vocab_size, n_layer, n_head, n_embd, bias, dropout). LayerNorm eps 1e-5, exact GELU,
 * tied head, 4x MLP, as nanoGPT's model.py. `bias=False` gives bias-free Linears (the LayerNorm biases
 * it lacks load as zeros, which is the same function).
 */
export function nanoGptConfig(cfg: HfConfig): TransformerConfigInput {
  const w = 'config.json (nanoGPT model_args)';
  const hiddenSize = hfInt(cfg, 'n_embd', undefined, w);
  return gpt2Config({
    vocabSize: hfInt(cfg, 'vocab_size', undefined, w),
    hiddenSize,
    numLayers: hfInt(cfg, 'n_layer', undefined, w),
    numHeads: hfInt(cfg, 'n_head', undefined, w),
    intermediateSize: 4 * hiddenSize,
    maxSeqLen: hfInt(cfg, 'block_size', undefined, w),
    normEps: 1e-5,
    activation: 'gelu',
    bias: hfBool(cfg, 'bias', true, w),
    tieEmbeddings: true,
    ...(() => {
      const p = hfRate(cfg, 'dropout', 0, w); // nanoGPT: one rate for attention, residual and embeddings
      return dropouts({ attentionDropout: p, hiddenDropout: p, embeddingDropout: p });
    })(),
  });
}

export interface Gpt2MapOptions {
  numLayers: number;
  /** What precedes `wte.weight`: 'transformer.' (GPT2LMHeadModel, nanoGPT), '' (the hub's gpt2), '_orig_mod.transformer.' (torch.compile'd nanoGPT). */
  prefix: string;
  /** HF Conv1D ([in, out], transposed on load) or nanoGPT nn.Linear ([out, in]). */
  layout: 'conv1d' | 'linear';
  /** Linear biases present (false for nanoGPT bias=False). Default true. */
  bias?: boolean;
  /** LayerNorm biases present in the checkpoint; when false they load as zeros of `hiddenSize`. Default = bias. */
  layerNormBias?: boolean;
  hiddenSize?: number;
  /** Untied head: `lm_head.weight` loads into vlmix's lm_head. Default true (tied: it is skipped). */
  tied?: boolean;
}

/** The prefix before `wte.weight` in a GPT-2-family checkpoint (error when there is none). */
export function gpt2Prefix(checkpointNames: Iterable<string>): string {
  const found: string[] = [];
  for (const n of checkpointNames) if (n === 'wte.weight' || n.endsWith('.wte.weight')) found.push(n.slice(0, -'wte.weight'.length));
  if (found.length !== 1) fail(`GPT-2 checkpoint: expected exactly one "...wte.weight" tensor, found ${found.length ? found.map((p) => `${p}wte.weight`).join(', ') : 'none'}`);
  return found[0]!;
}

/** Weight map for GPT-2-family checkpoints (HF GPT2LMHeadModel / GPT2Model, nanoGPT). */
export function gpt2WeightMap(o: Gpt2MapOptions): WeightMap {
  const bias = o.bias ?? true;
  const lnBias = o.layerNormBias ?? bias;
  const tied = o.tied ?? true;
  if (!lnBias && o.hiddenSize === undefined) fail('gpt2WeightMap: hiddenSize is needed to fill absent LayerNorm biases');
  const pre = o.prefix;
  const root = pre.endsWith('transformer.') ? pre.slice(0, -'transformer.'.length) : pre;
  const t = new Map<string, WeightSource>();
  const lin = (dst: string, src: string) => {
    t.set(`${dst}.weight`, { from: `${src}.weight`, transpose: o.layout === 'conv1d' });
    if (bias) t.set(`${dst}.bias`, { from: `${src}.bias` });
  };
  const ln = (dst: string, src: string) => {
    t.set(`${dst}.weight`, { from: `${src}.weight` });
    t.set(`${dst}.bias`, lnBias ? { from: `${src}.bias` } : { zeros: [o.hiddenSize!] });
  };
  t.set(names.wordEmbeddings, { from: `${pre}wte.weight` });
  t.set(names.positionEmbeddings, { from: `${pre}wpe.weight` });
  for (let l = 0; l < o.numLayers; l++) {
    const h = `${pre}h.${l}.`;
    const p = (s: string) => names.layer(l, s);
    ln(p('input_layernorm'), `${h}ln_1`);
    lin(p('attention.query_key_value'), `${h}attn.c_attn`);
    lin(p('attention.dense'), `${h}attn.c_proj`);
    ln(p('post_attention_layernorm'), `${h}ln_2`);
    lin(p('mlp.dense_h_to_4h'), `${h}mlp.c_fc`);
    lin(p('mlp.dense_4h_to_h'), `${h}mlp.c_proj`);
  }
  ln(names.finalNorm, `${pre}ln_f`);
  if (!tied) t.set(`${names.lmHead}.weight`, { from: `${root}lm_head.weight` });
  const skip = [
    { test: (n: string) => /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/.test(n), why: 'attn.bias / attn.masked_bias (causal-mask buffers)' },
  ];
  if (tied) skip.push({ test: (n: string) => n === `${root}lm_head.weight`, why: `${root}lm_head.weight (tied to wte)` });
  return { source: o.layout === 'conv1d' ? 'HF GPT-2 (Conv1D)' : 'nanoGPT (nn.Linear)', targets: t, skip };
}

/**
 * Maps a Hugging Face GPT2LMHeadModel / GPT2Model state dict (with or without the `transformer.`
 * prefix) to vlmix names. Conv1D weights [in, out] are transposed to our [out, in]; the tied
 * `lm_head.weight` and the attention buffers are dropped. The returned tensors are new; dispose them.
 */
export function gpt2FromHF(src: Map<string, tf.Tensor>, numLayers: number): Map<string, tf.Tensor> {
  return applyWeightMap(gpt2WeightMap({ numLayers, prefix: gpt2Prefix(src.keys()), layout: 'conv1d' }), src);
}

/** Maps a nanoGPT state dict (nn.Linear, [out, in]) to vlmix names; see gpt2WeightMap for bias=False. */
export function gpt2FromNanoGPT(src: Map<string, tf.Tensor>, numLayers: number, opts: { bias?: boolean; hiddenSize?: number } = {}): Map<string, tf.Tensor> {
  return applyWeightMap(gpt2WeightMap({ numLayers, prefix: gpt2Prefix(src.keys()), layout: 'linear', ...opts }), src);
}
