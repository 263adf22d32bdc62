/** LLaMA: RMSNorm, SwiGLU, rotary positions (a mixin), grouped-query attention, no biases. */
import * as tf from '@tensorflow/tfjs';
import type { TransformerConfigInput } from '../config.js';
import { Model } from '../model.js';
import { RotaryMixin, type RotaryOptions } from '../mixins/rope.js';
import { names } from '../transformer.js';
import { fail } from '../errors.js';

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

/** Hugging Face LlamaForCausalLM names -> vlmix names (rotate-half RoPE, the default style). */
export function llamaFromHF(src: Map<string, tf.Tensor>, numLayers: number, tied: boolean): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const C = (n: string) => take(src, n).clone();
  out.set(names.wordEmbeddings, C('model.embed_tokens.weight'));
  for (let l = 0; l < numLayers; l++) {
    const s = `model.layers.${l}.`;
    const p = (x: string) => names.layer(l, x);
    out.set(p('attention.query_key_value.weight'),
      tf.concat([take(src, `${s}self_attn.q_proj.weight`), take(src, `${s}self_attn.k_proj.weight`), take(src, `${s}self_attn.v_proj.weight`)], 0));
    out.set(p('attention.dense.weight'), C(`${s}self_attn.o_proj.weight`));
    out.set(p('mlp.dense_h_to_4h_gate.weight'), C(`${s}mlp.gate_proj.weight`));
    out.set(p('mlp.dense_h_to_4h.weight'), C(`${s}mlp.up_proj.weight`));
    out.set(p('mlp.dense_4h_to_h.weight'), C(`${s}mlp.down_proj.weight`));
    out.set(p('input_layernorm.weight'), C(`${s}input_layernorm.weight`));
    out.set(p('post_attention_layernorm.weight'), C(`${s}post_attention_layernorm.weight`));
  }
  out.set(`${names.finalNorm}.weight`, C('model.norm.weight'));
  if (!tied) out.set(`${names.lmHead}.weight`, C('lm_head.weight'));
  return out;
}
