import * as tf from '@tensorflow/tfjs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createGpt2, createLlama, gpt2FromHF, llamaFromLlama2c, type SafetensorsFile } from '../src/index.js';
import { assertClose, loadFixtureSync } from '../src/testkit/index.js';

const dir = (n: string) => fileURLToPath(new URL(`./fixtures/${n}`, import.meta.url));
const asMap = (f: SafetensorsFile) => new Map(f.names().map((n) => [n, f.toTensor(n)]));

describe('reference parity', () => {
  it('llama2.c forward (RMSNorm, interleaved RoPE, GQA, SwiGLU, tied): hidden states, logits, loss', () => {
    const fx = loadFixtureSync(dir('llama2c_forward'));
    const m = createLlama(
      { vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 96, maxSeqLen: 16, normEps: 1e-5, tieEmbeddings: true },
      { style: 'interleaved', base: 10000 },
    );
    const src = asMap(fx.weights!);
    const mapped = llamaFromLlama2c(src, 2, true);
    m.loadStateDict(mapped);
    const tokens = fx.io.toTensor('tokens');
    const out = m.forward({ inputIds: tokens }, { outputHiddenStates: true });
    const hs = fx.io.toTensor('hidden_states');
    for (let i = 0; i < 3; i++) {
      assertClose(out.hiddenStates![i]!, tf.squeeze(tf.slice(hs, [i, 0, 0, 0], [1, -1, -1, -1]), [0]), { rtol: 1e-5, atol: 2e-3, name: `hidden_states[${i}]` });
    }
    assertClose(out.finalHidden!, fx.io.toTensor('final_norm'), { rtol: 1e-4, atol: 1e-4, name: 'final_norm' });
    assertClose(out.logits, fx.io.toTensor('logits'), { rtol: 1e-4, atol: 1e-4, name: 'logits' });
    const loss = m.loss({ inputIds: tokens }, fx.io.toTensor('targets'), { ignoreIndex: -1 });
    expect(Math.abs(loss.dataSync()[0]! - fx.io.toFloat32('loss')[0]!)).toBeLessThan(1e-4);
    tf.dispose([...src.values(), ...mapped.values()]);
  });

  it('GPT-2 (HF GPT2LMHeadModel math and names): hidden states, logits, loss, padding mask', () => {
    const fx = loadFixtureSync(dir('gpt2_forward'));
    const m = createGpt2({ vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, maxSeqLen: 16 });
    const src = asMap(fx.weights!);
    const mapped = gpt2FromHF(src, 2);
    m.loadStateDict(mapped);
    const ids = fx.io.toTensor('input_ids');
    const out = m.forward({ inputIds: ids }, { outputHiddenStates: true });
    const hs = fx.io.toTensor('hidden_states');
    for (let i = 0; i < 3; i++) {
      assertClose(out.hiddenStates![i]!, tf.squeeze(tf.slice(hs, [i, 0, 0, 0], [1, -1, -1, -1]), [0]), { rtol: 1e-5, atol: 2e-3, name: `hidden_states[${i}]` });
    }
    assertClose(out.finalHidden!, fx.io.toTensor('final_norm'), { rtol: 1e-4, atol: 1e-4, name: 'final_norm' });
    assertClose(out.logits, fx.io.toTensor('logits'), { rtol: 1e-4, atol: 1e-4, name: 'logits' });
    const loss = m.loss({ inputIds: ids }, fx.io.toTensor('targets'));
    expect(Math.abs(loss.dataSync()[0]! - fx.io.toFloat32('loss')[0]!)).toBeLessThan(1e-4);
    // Padding: positions with mask 1 must match the reference's masked run.
    const mask = fx.io.toTensor('attention_mask');
    const masked = m.forward({ inputIds: ids, attentionMask: mask }).logits;
    const keep = tf.cast(tf.expandDims(mask, -1), 'float32');
    assertClose(tf.mul(masked, keep), tf.mul(fx.io.toTensor('logits_masked'), keep), { rtol: 1e-4, atol: 1e-4, name: 'logits_masked' });
    tf.dispose([...src.values(), ...mapped.values()]);
  });

  it('strict loading lists missing and mis-shaped tensors by name', () => {
    const fx = loadFixtureSync(dir('gpt2_forward'));
    const m = createGpt2({ vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, maxSeqLen: 8 });
    const mapped = gpt2FromHF(asMap(fx.weights!), 2);
    mapped.delete('transformer.layers.1.mlp.dense_4h_to_h.bias');
    expect(() => m.loadStateDict(mapped)).toThrow(/missing: transformer.layers.1.mlp.dense_4h_to_h.bias \| mis-shaped: transformer.position_embeddings.weight: expected \[8, 32\], got \[16, 32\]/);
  });
});
