import * as tf from '@tensorflow/tfjs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  checkWeightMap, createGpt2, gpt2ConfigFromHF, gpt2FromHF, gpt2WeightMap, llamaConfigFromHF, llamaWeightMap,
  nanoGptConfig, pretrainedArch,
} from '../src/index.js';
import { assertClose, loadFixtureSync } from '../src/testkit/index.js';

const fx = loadFixtureSync(fileURLToPath(new URL('./fixtures/gpt2_forward', import.meta.url)));

describe('GPT-2 name maps', () => {
  it("gpt2FromHF takes the hub's bare GPT2Model names as well as GPT2LMHeadModel's (same logits)", () => {
    const bare = new Map(fx.weights!.names().filter((n) => n !== 'lm_head.weight').map((n) => [n.replace(/^transformer\./, ''), fx.weights!.toTensor(n)]));
    const m = createGpt2({ vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, maxSeqLen: 16 });
    const mapped = gpt2FromHF(bare, 2);
    m.loadStateDict(mapped);
    const ids = fx.io.toTensor('input_ids');
    assertClose(m.forward({ inputIds: ids }).logits, fx.io.toTensor('logits'), { rtol: 1e-4, atol: 1e-4, name: 'logits' });
    tf.dispose([...bare.values(), ...mapped.values(), ids]);
    m.dispose();
  });

  it('accounts for every checkpoint tensor: buffers and a tied head are skipped, anything else is listed', () => {
    const map = gpt2WeightMap({ numLayers: 1, prefix: '', layout: 'conv1d' });
    const names = [...new Set([...map.targets.values()].flatMap((s) => ('from' in s ? [s.from] : [])))];
    expect(checkWeightMap(map, [...names, 'h.0.attn.bias', 'h.0.attn.masked_bias', 'lm_head.weight'], 'test').sort())
      .toEqual(['h.0.attn.bias', 'h.0.attn.masked_bias', 'lm_head.weight']);
    expect(() => checkWeightMap(map, [...names, 'h.0.attn.c_attn.lora_A'], 'test')).toThrow(/unmapped \(1\) — tensors with no vlmix counterpart: h\.0\.attn\.c_attn\.lora_A/);
    expect(() => checkWeightMap(map, names.filter((n) => n !== 'ln_f.bias'), 'test')).toThrow(/missing \(1\): ln_f\.bias \(for transformer\.final_layernorm\.bias\)/);
  });

  it('nanoGPT bias=False: bias-free linears, LayerNorm biases filled with zeros', () => {
    const map = gpt2WeightMap({ numLayers: 1, prefix: 'transformer.', layout: 'linear', bias: false, hiddenSize: 8 });
    expect(map.targets.get('transformer.layers.0.input_layernorm.bias')).toEqual({ zeros: [8] });
    expect(map.targets.has('transformer.layers.0.attention.dense.bias')).toBe(false);
    expect(map.targets.get('transformer.layers.0.attention.query_key_value.weight')).toEqual({ from: 'transformer.h.0.attn.c_attn.weight', transpose: false });
  });
});

describe('config.json -> vlmix config', () => {
  it('LLaMA: GQA, head_dim, eps, theta, tie from the file', () => {
    const { config, rope } = llamaConfigFromHF({
      model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
      num_attention_heads: 9, num_key_value_heads: 3, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true,
      max_position_embeddings: 2048, hidden_act: 'silu',
    }); // SmolLM-135M's sizes
    expect(config).toMatchObject({ vocabSize: 49152, hiddenSize: 576, numHeads: 9, numKvHeads: 3, headDim: 64, intermediateSize: 1536, numLayers: 30, tieEmbeddings: true, normEps: 1e-5, bias: false, qkvBias: false });
    expect(rope).toEqual({ base: 10000, style: 'half' });
    expect(llamaWeightMap({ numLayers: 1, tied: true, qkvBias: true }).targets.get('transformer.layers.0.attention.query_key_value.bias'))
      .toEqual({ concat: ['model.layers.0.self_attn.q_proj.bias', 'model.layers.0.self_attn.k_proj.bias', 'model.layers.0.self_attn.v_proj.bias'] });
  });

  it('GPT-2 and nanoGPT: activations and defaults, errors naming the field', () => {
    expect(gpt2ConfigFromHF({ model_type: 'gpt2' })).toMatchObject({ vocabSize: 50257, hiddenSize: 768, intermediateSize: 3072, maxSeqLen: 1024, activation: 'gelu_tanh' });
    expect(nanoGptConfig({ n_layer: 12, n_head: 12, n_embd: 768, block_size: 1024, bias: false, vocab_size: 50304, dropout: 0 })).toMatchObject({ activation: 'gelu', bias: false, vocabSize: 50304 });
    expect(pretrainedArch({ n_layer: 1, n_embd: 8, block_size: 4 })).toBe('nanogpt');
    expect(() => gpt2ConfigFromHF({ activation_function: 'swish' })).toThrow(/"activation_function" = "swish" is not supported/);
    expect(() => gpt2ConfigFromHF({ scale_attn_by_inverse_layer_idx: true })).toThrow(/"scale_attn_by_inverse_layer_idx" = true is not supported/);
    expect(() => llamaConfigFromHF({ hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, vocab_size: 4, intermediate_size: 8, hidden_act: 'gelu' })).toThrow(/"hidden_act" = "gelu" is not supported/);
    expect(() => llamaConfigFromHF({ hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, vocab_size: 4, intermediate_size: 8, attention_bias: true })).toThrow(/"attention_bias" = true with "mlp_bias" = false is not supported/);
    expect(() => llamaConfigFromHF({ hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, vocab_size: 4, intermediate_size: 8, use_sliding_window: true }, 'qwen2')).toThrow(/"use_sliding_window" = true is not supported/);
    expect(() => llamaConfigFromHF({ hidden_size: 8, num_attention_heads: 2, vocab_size: 4, intermediate_size: 8 })).toThrow(/"num_hidden_layers" is required/);
  });
});
