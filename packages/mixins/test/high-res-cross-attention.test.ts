// CogAgent's high-res cross-attention: without high-res features the layer is unchanged; with them each layer
// adds dense(attention(query(rmsnorm(h + attn)), key_value(feats))), checked against a composition written here.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createLlama, stateKey } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak } from '@vlmix/core/testkit';
import { HighResCrossAttentionMixin } from '../src/index.js';

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
