/** GPT-2: learned positions, pre-LayerNorm, GELU (tanh form, HF `gelu_new`), tied embeddings. */
import * as tf from '@tensorflow/tfjs';
import type { TransformerConfigInput } from '../config.js';
import { Model } from '../model.js';
import { names } from '../transformer.js';
import { fail } from '../errors.js';

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

function take(src: Map<string, tf.Tensor>, name: string): tf.Tensor {
  const t = src.get(name);
  if (!t) fail(`GPT-2 checkpoint: missing tensor '${name}'`);
  return t;
}

/**
 * Maps a Hugging Face GPT2LMHeadModel state dict to vlmix names. HF's Conv1D stores [in, out], so
 * weights are transposed to our [out, in]. `lm_head.weight` is dropped when embeddings are tied.
 * The returned tensors are new; dispose them after loading.
 */
export function gpt2FromHF(src: Map<string, tf.Tensor>, numLayers: number): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const T = (n: string) => tf.transpose(take(src, n));
  const C = (n: string) => take(src, n).clone();
  out.set(names.wordEmbeddings, C('transformer.wte.weight'));
  out.set(names.positionEmbeddings, C('transformer.wpe.weight'));
  for (let l = 0; l < numLayers; l++) {
    const h = `transformer.h.${l}.`;
    const p = (s: string) => names.layer(l, s);
    out.set(p('input_layernorm.weight'), C(`${h}ln_1.weight`));
    out.set(p('input_layernorm.bias'), C(`${h}ln_1.bias`));
    out.set(p('attention.query_key_value.weight'), T(`${h}attn.c_attn.weight`));
    out.set(p('attention.query_key_value.bias'), C(`${h}attn.c_attn.bias`));
    out.set(p('attention.dense.weight'), T(`${h}attn.c_proj.weight`));
    out.set(p('attention.dense.bias'), C(`${h}attn.c_proj.bias`));
    out.set(p('post_attention_layernorm.weight'), C(`${h}ln_2.weight`));
    out.set(p('post_attention_layernorm.bias'), C(`${h}ln_2.bias`));
    out.set(p('mlp.dense_h_to_4h.weight'), T(`${h}mlp.c_fc.weight`));
    out.set(p('mlp.dense_h_to_4h.bias'), C(`${h}mlp.c_fc.bias`));
    out.set(p('mlp.dense_4h_to_h.weight'), T(`${h}mlp.c_proj.weight`));
    out.set(p('mlp.dense_4h_to_h.bias'), C(`${h}mlp.c_proj.bias`));
  }
  out.set(`${names.finalNorm}.weight`, C('transformer.ln_f.weight'));
  out.set(`${names.finalNorm}.bias`, C('transformer.ln_f.bias'));
  return out;
}
