import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLlama, llamaWeightMap, loadWeightMap, type Model } from '@vlmix/core';
import { assertNoLeak, compareTensors, loadFixtureSync } from '@vlmix/core/testkit';
import { GatedCrossAttentionMixin, type GatedCrossAttentionOptions } from '../src/deep/gated-cross-attention.js';
import { loadGatedCrossAttention, openFlamingoBlockName } from '../src/deep/gated-cross-attention-load.js';
import { asSafetensors } from '../src/weights.js';
import { assertParity } from './helpers.js';

const FIX = join(import.meta.dirname, 'fixtures', 'flamingo_lm');
const MEDIA_ID = 47;

/** The tiny LLaMA of the fixture with a gated block before layers 1 and 3 (open_flamingo cross_attn_every_n_layers = 2). */
function flamingoLm(o: GatedCrossAttentionOptions = {}): Model {
  const m = createLlama({ vocabSize: 48, hiddenSize: 32, numLayers: 4, numHeads: 4, numKvHeads: 4, intermediateSize: 32, normEps: 1e-5, maxSeqLen: 32 }, { base: 10000 });
  m.addMixin('xattn', new GatedCrossAttentionMixin({ dimVisual: 24, dimHead: 8, heads: 4, ffMult: 2, everyN: 2, mediaTokenId: MEDIA_ID, ...o }));
  return m;
}

/** The decoder (non-gated) part of the open_flamingo state_dict under LlamaForCausalLM names. */
function loadDecoder(model: Model, fx: ReturnType<typeof loadFixtureSync>): void {
  const W = fx.weights!;
  const lm = new Map<string, tf.Tensor>();
  for (const n of W.names()) {
    if (n.includes('gated_cross_attn_layer')) continue;
    lm.set(n.replace(/^lang_encoder\./, '').replace('.decoder_layer.', '.'), W.toTensor(n));
  }
  loadWeightMap(model, llamaWeightMap({ numLayers: 4, tied: false }), asSafetensors(lm), { partial: true });
  tf.dispose([...lm.values()]);
}

describe('open_flamingo LM stack: gated blocks loaded from open_flamingo names vs torch reference math', () => {
  const fx = loadFixtureSync(FIX);
  const ids = fx.io.toTensor('input_ids');
  const media = fx.io.toTensor('media');
  for (const immediate of [true, false]) {
    it(`only_attend_immediate_media=${immediate}: logits match on every token, text before the first media included`, () => {
      const model = flamingoLm({ onlyAttendImmediateMedia: immediate });
      loadDecoder(model, fx);
      const r = loadGatedCrossAttention(model, 'xattn', fx.weights!);
      expect(r.loaded).toHaveLength(2 * 11);
      // each block is in the file twice (FlamingoLayer and lang_encoder.gated_cross_attn_layers): one is read
      expect(r.skipped.filter((n) => n.includes('gated_cross_attn'))).toHaveLength(2 * 11);
      const want = fx.io.toTensor(immediate ? 'logits_immediate' : 'logits_all');
      const logits = model.forward({ inputIds: ids, media: { mediaLatents: media } }).logits;
      assertParity(logits, want, immediate ? 'logits_immediate' : 'logits_all');
      if (!immediate) {
        // 'zero' changes the three tokens before row 0's first media (and, through self-attention, row 0 after
        // them); row 1 starts with its media and is unchanged
        const zero = flamingoLm({ onlyAttendImmediateMedia: false, noMediaAttention: 'zero' });
        loadDecoder(zero, fx);
        loadGatedCrossAttention(zero, 'xattn', fx.weights!, { prefix: 'lang_encoder.' });
        const z = zero.forward({ inputIds: ids, media: { mediaLatents: media } }).logits;
        expect(compareTensors(tf.slice(z, [0, 0, 0], [1, 3, -1]), tf.slice(want, [0, 0, 0], [1, 3, -1]), { atol: 1e-3 }).ok).toBe(false);
        assertParity(tf.slice(z, [1, 0, 0], [1, -1, -1]), tf.slice(want, [1, 0, 0], [1, -1, -1]), 'row 1 (media first)');
        zero.dispose();
      }
      model.dispose();
    });
  }

  it('one block from its own names (gated_cross_attn_layer.* or bare) with `layer`; errors name the problem', () => {
    const W = fx.weights!;
    const pre = 'lang_encoder.model.layers.3.gated_cross_attn_layer.';
    const own = new Map(W.names().filter((n) => n.startsWith(pre)).map((n) => [n.slice(pre.length), W.toTensor(n)] as const));
    const model = flamingoLm();
    expect(loadGatedCrossAttention(model, 'xattn', own, { layer: 3 }).loaded).toHaveLength(11);
    const nested = new Map([...own].map(([n, t]) => [`gated_cross_attn_layer.${n}`, t] as const));
    expect(loadGatedCrossAttention(model, 'xattn', nested, { layer: 3 }).loaded).toHaveLength(11);
    expect(tf.max(tf.abs(tf.sub(model.param('xattn.gated_cross_attn_layers.3.attn.to_kv.weight'), own.get('attn.to_kv.weight')!))).dataSync()[0]).toBe(0);
    expect(() => loadGatedCrossAttention(model, 'xattn', own, { layer: 2 })).toThrow(/layer: expected one of the layers with a block \(1, 3; everyN 2\), got 2/);
    own.delete('ff_gate');
    expect(() => loadGatedCrossAttention(model, 'xattn', own, { layer: 3 })).toThrow(/missing \(1\)(.|\n)*xattn\.gated_cross_attn_layers\.3\.ff_gate/);
    // the whole file into a model with a block before every layer: blocks 0 and 2 are missing
    const every = flamingoLm({ everyN: 1 });
    expect(() => loadGatedCrossAttention(every, 'xattn', W)).toThrow(/missing \(22\)(.|\n)*gated_cross_attn_layers\.0\.attn_gate/);
    expect(openFlamingoBlockName('lang_encoder.transformer.blocks.5.gated_cross_attn_layer.attn.to_q.weight')).toEqual({ layer: 5, local: 'attn.to_q.weight' });
    expect(openFlamingoBlockName('lang_encoder.model.layers.5.decoder_layer.mlp.up_proj.weight')).toBeNull();
    tf.dispose([...own.values()]);
    model.dispose();
    every.dispose();
  });

  it('a forward pass leaks no tensors and reads nothing back', () => {
    const model = flamingoLm({ onlyAttendImmediateMedia: false });
    const prepared = model.prepareInputs({ inputIds: ids, media: { mediaLatents: media } });
    assertNoLeak(() => model.forward({ inputIds: ids, media: { mediaLatents: media }, prepared }).logits);
    model.dispose();
  });
});
