// CogAgent's high-res cross-attention: without high-res features the layer is unchanged; with them each layer
// adds dense(attention(query(rmsnorm(h + attn)), key_value(feats))), checked against a composition written here
// and, in a whole tiny CogAgent (visual expert + cross-attention in every layer), against a plain-torch
// re-implementation of its decoder layer (fixtures/cogagent_cross, scripts/fixtures/cogagent_cross.py).
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createLlama, Mixin, stateKey, type HookImpls } from '@vlmix/core';
import { join } from 'node:path';
import { assertClose, assertGradients, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { cogvlmToVlmix, HighResCrossAttentionMixin, VisualExpertMixin } from '../src/index.js';

const ids = [[1, 5, 9, 2]];

describe('HighResCrossAttentionMixin', () => {
  it('no features: the base model bit for bit; with features: the reference formula (one layer); no leaks; errors', () => {
    const base = createLlama({ vocabSize: 16, hiddenSize: 16, numLayers: 1, numHeads: 2, seed: 4 });
    const m = createLlama({ vocabSize: 16, hiddenSize: 16, numLayers: 1, numHeads: 2, seed: 4 });
    const mix = new HighResCrossAttentionMixin({ featuresKey: 'hr', encoderSize: 6, crossHiddenSize: 8, heads: 2 });
    m.addMixin('cross_hr', mix);
    expect(Array.from(m.forward({ inputIds: ids }).logits.dataSync())).toEqual(Array.from(base.forward({ inputIds: ids }).logits.dataSync()));
    const feats = tf.randomNormal([1, 5, 6], 0, 1, 'float32', 9);
    const key = stateKey<tf.Tensor3D>('hr');
    const h = tf.randomNormal([1, 4, 16], 0, 1, 'float32', 10);
    // the formula, with the mixin's parameters
    const p = (n: string) => m.param(`transformer.layers.0.${n}`);
    const want = tf.tidy(() => {
      const attn = tf.zerosLike(h); // stand-in attention output: the cross term only depends on h + attn
      const hx = tf.add(h, attn);
      const rms = tf.mul(tf.div(hx, tf.sqrt(tf.add(tf.mean(tf.square(hx), -1, true), m.config.normEps))), p('post_cross_attention_layernorm.weight'));
      const q = tf.transpose(tf.reshape(tf.matMul(tf.reshape(rms, [4, 16]), p('cross_attn.query.weight'), false, true), [1, 4, 2, 4]), [0, 2, 1, 3]);
      const kv = tf.matMul(tf.reshape(feats, [5, 6]), p('cross_attn.key_value.weight'), false, true);
      const [k, v] = tf.split(kv, 2, -1).map((t) => tf.transpose(tf.reshape(t, [1, 5, 2, 4]), [0, 2, 1, 3]));
      const a = tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k!, false, true), 1 / 2)), v!);
      return tf.matMul(tf.reshape(tf.transpose(a, [0, 2, 1, 3]), [4, 8]), p('cross_attn.dense.weight'), false, true);
    });
    const hooks = mix.hooks();
    // the hook reads only these from its context
    const withState = { layerPrefix: 'transformer.layers.0.', config: m.config, param: (n: string) => m.param(n), state: { get: (k2: unknown) => (k2 === key || (k2 as { name?: string }).name === 'hr' ? feats : null) } };
    const cross = tf.tidy(() => hooks.attentionForward!(h, withState as never, () => tf.zerosLike(h)));
    assertClose(tf.reshape(cross, [4, 16]), want, { atol: 1e-5, name: 'cross-attention term' });
    assertNoLeak(() => tf.tidy(() => hooks.attentionForward!(h, withState as never, () => tf.zerosLike(h))));
    // finite differences w.r.t. the hidden state and the high-res features
    assertGradients((hh, ff) => hooks.attentionForward!(hh!, { ...withState, state: { get: () => ff } } as never, () => tf.mul(hh!, 0.5)), [h, feats], { label: 'high-res cross-attention' });
    expect(() => new HighResCrossAttentionMixin({ featuresKey: 'hr', encoderSize: 6, crossHiddenSize: 9, heads: 2 })).toThrow('crossHiddenSize 9 must be divisible by heads 2');
    tf.dispose([feats, h, want, cross]);
    base.dispose();
    m.dispose();
  });
});

/** Puts media.hr into state 'hr' (stands in for the high-res vision tower). */
class HrFeatures extends Mixin {
  hooks(): HookImpls {
    return { encodeMedia: (state, ctx, next) => next(state, ctx).with(stateKey<tf.Tensor3D>('hr'), ctx.media.hr as tf.Tensor3D, this.name) };
  }
}

describe('a tiny CogAgent vs the torch reference layer (self-attention, then cross-attention on the residual stream, then MLP)', () => {
  it('logits match (1e-4) with CogVLM + CogAgent names', () => {
    const fx = loadFixtureSync(join(import.meta.dirname, 'fixtures', 'cogagent_cross'));
    const W = fx.weights!;
    const src = new Map(W.names().map((n) => [n, W.toTensor(n)] as const));
    const model = createLlama({ vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 48, normEps: 1e-5, maxSeqLen: 64, seed: 0 });
    model.addMixin('vexpert', new VisualExpertMixin());
    model.addMixin('hr', new HrFeatures());
    model.addMixin('cross_hr', new HighResCrossAttentionMixin({ featuresKey: 'hr', encoderSize: 12, crossHiddenSize: 16, heads: 2 }));
    const sd = cogvlmToVlmix(src, 2);
    for (let l = 0; l < 2; l++) {
      for (const n of ['cross_attn.query.weight', 'cross_attn.key_value.weight', 'cross_attn.dense.weight', 'post_cross_attention_layernorm.weight']) {
        sd.set(`transformer.layers.${l}.${n}`, src.get(`model.layers.${l}.${n}`)!);
      }
    }
    expect(model.loadStateDict(sd, { strict: true }).missing).toEqual([]);
    const logits = model.forward({ inputIds: fx.io.toTensor('input_ids'), tokenTypes: fx.io.toTensor('token_type_ids'), media: { hr: fx.io.toTensor('features') } }).logits;
    assertClose(logits, fx.io.toTensor('logits'), { rtol: 1e-4, atol: 1e-4, name: 'CogAgent logits' });
    model.dispose();
  });
});
