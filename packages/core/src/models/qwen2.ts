/**
 * Qwen2: the LLaMA architecture (RMSNorm, SwiGLU, rotate-half RoPE, GQA) with biases on the q/k/v
 * projections only (HF Qwen2Attention: q/k/v_proj bias=True, o_proj bias=False; MLP without bias),
 * rope_theta 1e6 in the released checkpoints. Same parameter and reference names as LLaMA.
 */
import type * as tf from '@tensorflow/tfjs';
import type { TransformerConfigInput } from '../config.js';
import type { RotaryOptions } from '../positions/rope.js';
import type { Model } from '../model.js';
import { createLlama, llamaConfig, llamaWeightMap } from './llama.js';
import { applyWeightMap } from './weight-map.js';

export function qwen2Config(c: Partial<TransformerConfigInput> = {}): TransformerConfigInput {
  return llamaConfig({
    vocabSize: 151936, hiddenSize: 896, numLayers: 24, numHeads: 14, numKvHeads: 2, intermediateSize: 4864,
    maxSeqLen: 32768, tieEmbeddings: true, bias: false, qkvBias: true,
    ...c,
  });
}

/** A Qwen2-style model (defaults: Qwen2-0.5B's sizes) with its `rope` mixin (theta 1e6 unless given). */
export function createQwen2(c: Partial<TransformerConfigInput> = {}, rope: RotaryOptions = {}): Model {
  return createLlama(qwen2Config(c), { base: 1_000_000, ...rope });
}

/** HF Qwen2ForCausalLM names -> vlmix names (LLaMA's map plus the q/k/v biases). New tensors; dispose them. */
export function qwen2FromHF(src: Map<string, tf.Tensor>, numLayers: number, tied: boolean): Map<string, tf.Tensor> {
  return applyWeightMap(llamaWeightMap({ numLayers, tied, qkvBias: true }), src);
}
