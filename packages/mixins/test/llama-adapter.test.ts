// LLaMA-Adapter (PEFT AdaptionPrompt): zero-init gating makes the adapted model exactly the base model, only
// the gate gets a gradient at init, and once the gate opens the prompts do; top-L layers only; no leaks.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createLlama, llamaFromHF } from '@vlmix/core';
import { join } from 'node:path';
import { assertClose, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { LlamaAdapterMixin } from '../src/index.js';

const ids = [[1, 5, 9, 2, 7, 3]];
const labels = () => tf.tensor2d([[5, 9, 2, 7, 3, -1]], undefined, 'int32');
const lm = () => createLlama({ vocabSize: 16, hiddenSize: 16, numLayers: 3, numHeads: 4, numKvHeads: 2, seed: 2 });

describe('LlamaAdapterMixin', () => {
  it('at gate 0 the logits are the base model\'s bit for bit; the top layers get prompts and gates (PEFT names)', () => {
    const base = lm();
    const m = lm();
    m.addMixin('adapter', new LlamaAdapterMixin({ layers: 2, length: 4 }));
    expect(m.params.names().filter((n) => n.includes('adaption'))).toEqual([
      'transformer.layers.1.attention.adaption_prompt', 'transformer.layers.1.attention.adaption_gate',
      'transformer.layers.2.attention.adaption_prompt', 'transformer.layers.2.attention.adaption_gate',
    ]);
    expect(m.hookOrigins().layers[0]!.hooks.attentionForward).toEqual(['base']);
    expect(m.hookOrigins().layers[2]!.hooks.attentionForward).toEqual(['adapter', 'base']);
    const [a, b] = [base.forward({ inputIds: ids }).logits, m.forward({ inputIds: ids }).logits];
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    assertNoLeak(() => m.forward({ inputIds: ids }).logits);
    expect(() => lm().addMixin('adapter', new LlamaAdapterMixin({ layers: 4, length: 2 }))).toThrow('llama-adapter: layers 4 exceeds the model\'s 3 layers');
    tf.dispose([a, b]);
    base.dispose();
    m.dispose();
  });

  it('the gate and prompt gradients equal central finite differences of the loss', () => {
    const m = lm();
    m.addMixin('adapter', new LlamaAdapterMixin({ layers: 2, length: 3, gateInit: 0.3 }));
    const y = labels();
    const loss = () => tf.tidy(() => m.loss({ inputIds: ids }, y, { ignoreIndex: -1 }).dataSync()[0]!);
    for (const [name, index] of [['transformer.layers.2.attention.adaption_gate', 0], ['transformer.layers.1.attention.adaption_prompt', 5]] as const) {
      const v = m.params.list().find((p) => p.name === name)!.variable;
      const { grads } = tf.variableGrads(() => m.loss({ inputIds: ids }, y, { ignoreIndex: -1 }), [v]);
      const analytic = grads[v.name]!.dataSync()[index]!;
      const base = v.dataSync().slice();
      const at = (d: number) => {
        const w = base.slice();
        w[index] = w[index]! + d;
        tf.tidy(() => v.assign(tf.tensor(w, v.shape)));
        return loss();
      };
      const eps = 1e-2;
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      tf.tidy(() => v.assign(tf.tensor(base, v.shape)));
      expect(Math.abs(analytic - numeric), name).toBeLessThan(1e-3 + 2e-2 * Math.abs(numeric));
      tf.dispose(Object.values(grads));
    }
    y.dispose();
    m.dispose();
  });

  it('zero-init gating: at init only the gates get gradients; with an open gate the prompts do and the output changes', () => {
    for (const gateInit of [0, 0.5]) {
      const m = lm();
      m.addMixin('adapter', new LlamaAdapterMixin({ layers: 2, length: 4, gateInit }));
      const vars = m.params.list().filter((p) => p.name.includes('adaption')).map((p) => p.variable);
      const y = labels();
      const { value, grads } = tf.variableGrads(() => m.loss({ inputIds: ids }, y, { ignoreIndex: -1 }), vars);
      const norm = (part: string) => Object.entries(grads).filter(([k]) => k.includes(part)).reduce((s, [, g]) => s + tf.sum(tf.abs(g)).dataSync()[0]!, 0);
      expect(norm('adaption_gate')).toBeGreaterThan(0);
      if (gateInit === 0) expect(norm('adaption_prompt')).toBe(0);
      else expect(norm('adaption_prompt')).toBeGreaterThan(0);
      tf.dispose([value, y, ...Object.values(grads)]);
      m.dispose();
    }
  });
});

describe('LLaMA-Adapter vs PEFT AdaptedAttention re-implemented in torch (fixtures/llama_adapter)', () => {
  it('a tiny LLaMA (GQA) with the adapter in its top layer and a trained gate: logits match (1e-4); PEFT names load', () => {
    const fx = loadFixtureSync(join(import.meta.dirname, 'fixtures', 'llama_adapter'));
    const W = fx.weights!;
    const src = new Map(W.names().map((n) => [n, W.toTensor(n)] as const));
    const model = createLlama({ vocabSize: 48, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 40, normEps: 1e-6, maxSeqLen: 16, seed: 0 });
    model.addMixin('adapter', new LlamaAdapterMixin({ layers: 1, length: 3 }));
    const peft = new Map([...src].filter(([n]) => n.includes('adaption_')));
    const sd = llamaFromHF(new Map([...src].filter(([n]) => !n.includes('adaption_'))), 2, false);
    for (const [n, t] of peft) sd.set(n.replace(/^model\.layers\.(\d+)\.self_attn\./, 'transformer.layers.$1.attention.'), t);
    expect(model.loadStateDict(sd, { strict: true }).missing).toEqual([]);
    const ids = fx.io.toTensor('input_ids');
    assertClose(model.forward({ inputIds: ids }).logits, fx.io.toTensor('logits'), { rtol: 1e-4, atol: 1e-4, name: 'logits with the adapter' });
    model.dispose();
  });
});
