import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLlama, loadStateDict, names, type Model } from '@vlmix/core';
import { loadFixtureSync } from '@vlmix/core/testkit';
import { VisualExpertMixin } from '../src/deep/visual-expert.js';
import { loadVisionExpertAttention, loadVisionExpertMLP } from '../src/deep/visual-expert-load.js';
import { assertParity } from './helpers.js';

const FIX = join(import.meta.dirname, 'fixtures', 'visual_expert');

const tiny = (): Model => {
  const m = createLlama({ vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 48, normEps: 1e-5, maxSeqLen: 64, seed: 9 });
  m.addMixin('vexpert', new VisualExpertMixin());
  return m;
};

/** The module's tensors of layer l with its prefix removed (its own state_dict). */
function moduleDict(fx: ReturnType<typeof loadFixtureSync>, prefix: string): Map<string, tf.Tensor> {
  const W = fx.weights!;
  return new Map(W.names().filter((n) => n.startsWith(prefix)).map((n) => [n.slice(prefix.length), W.toTensor(n)] as const));
}

describe('CogVLM VisionExpertAttention / VisionExpertMLP from their own names, one layer at a time', () => {
  it('layer 0 from the whole-model file (prefix detected), layer 1 from bare module state_dicts: logits match the torch reference', () => {
    const fx = loadFixtureSync(FIX);
    const W = fx.weights!;
    const model = tiny();
    // what is not part of the two modules: embeddings, norms, head
    const other: Record<string, string> = {
      'model.embed_tokens.weight': names.wordEmbeddings, 'model.norm.weight': `${names.finalNorm}.weight`, 'lm_head.weight': `${names.lmHead}.weight`,
    };
    for (const l of [0, 1]) {
      other[`model.layers.${l}.input_layernorm.weight`] = names.layer(l, 'input_layernorm.weight');
      other[`model.layers.${l}.post_attention_layernorm.weight`] = names.layer(l, 'post_attention_layernorm.weight');
    }
    const rest = new Map(Object.values(other).map((n) => [n, model.param(n)] as const));
    loadStateDict(rest, W, { nameMap: (n) => other[n] ?? null });

    const a0 = loadVisionExpertAttention(model, 0, W);
    expect(a0.loaded).toHaveLength(4);
    expect(loadVisionExpertMLP(model, 0, W).loaded).toHaveLength(6);
    const attn1 = moduleDict(fx, 'model.layers.1.self_attn.');
    attn1.set('rotary_emb.inv_freq', tf.ones([4])); // a buffer some checkpoints keep: skipped
    const mlp1 = moduleDict(fx, 'model.layers.1.mlp.');
    expect(loadVisionExpertAttention(model, 1, attn1).skipped).toEqual(['rotary_emb.inv_freq']);
    loadVisionExpertMLP(model, 1, Object.fromEntries(mlp1));

    const out = model.forward({ inputIds: fx.io.toTensor('input_ids'), tokenTypes: fx.io.toTensor('token_type_ids') }, { outputHiddenStates: true });
    assertParity(out.logits, fx.io.toTensor('logits'), 'logits');
    assertParity(out.hiddenStates![1]!, fx.io.toTensor('hidden_layer1'), 'hidden_layer1');
    tf.dispose([...attn1.values(), ...mlp1.values()]);
    model.dispose();
  });

  it('an explicit prefix; errors name the layer, the missing or extra tensor, and leave parameters untouched', () => {
    const fx = loadFixtureSync(FIX);
    const model = tiny();
    const renamed = new Map([...moduleDict(fx, 'model.layers.1.self_attn.')].map(([n, t]) => [`decoder.1.attn.${n}`, t] as const));
    loadVisionExpertAttention(model, 1, renamed, { prefix: 'decoder.1.attn.' });
    expect(tf.max(tf.abs(tf.sub(model.param('transformer.layers.1.attention.vision_expert_dense.weight'), renamed.get('decoder.1.attn.vision_expert_dense.weight')!))).dataSync()[0]).toBe(0);

    const before = model.param('transformer.layers.0.attention.vision_expert_query_key_value.weight').clone();
    const noDense = moduleDict(fx, 'model.layers.0.self_attn.');
    noDense.delete('vision_expert_dense.weight');
    expect(() => loadVisionExpertAttention(model, 0, noDense)).toThrow(/loadVisionExpertAttention \(prefix ""\).*\n(.|\n)*missing \(1\)(.|\n)*transformer\.layers\.0\.attention\.vision_expert_dense\.weight/);
    const withBias = moduleDict(fx, 'model.layers.0.self_attn.');
    withBias.set('vision_expert_query_key_value.bias', tf.zeros([96])); // CogVLM2 has one; this model was built without
    expect(() => loadVisionExpertAttention(model, 0, withBias)).toThrow(/unexpected \(1\)(.|\n)*vision_expert_query_key_value\.bias/);
    expect(() => loadVisionExpertMLP(model, 2, new Map())).toThrow(/loadVisionExpertMLP: layer: expected an integer in \[0, 1\], got 2/);
    const plain = createLlama({ vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 48 });
    expect(() => loadVisionExpertAttention(plain, 0, new Map())).toThrow(/has no VisualExpertMixin/);
    // nothing assigned by the failed loads
    expect(tf.max(tf.abs(tf.sub(model.param('transformer.layers.0.attention.vision_expert_query_key_value.weight'), before))).dataSync()[0]).toBe(0);
    plain.dispose();
    model.dispose();
  });
});
