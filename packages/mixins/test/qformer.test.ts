import * as tf from '@tensorflow/tfjs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Model, ParamStore, Rng, openSafetensorsFile } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { assertParity, FeatureSource } from './helpers.js';
import { loadBlip2QFormer, QFormer, QFormerConnectorMixin, type QFormerConfig } from '../src/connectors/qformer.js';
import { expandImagePlaceholders } from '../src/connectors/projectors.js';
import { VisionEncoderMixin } from '../src/vision/vit.js';

const here = dirname(fileURLToPath(import.meta.url));
const rng = new Rng('qformer-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);



const FIX: QFormerConfig = { hiddenSize: 32, numLayers: 3, numHeads: 4, intermediateSize: 48, encoderHiddenSize: 24, numQueryTokens: 6, crossAttentionFrequency: 2 };
const TINY: QFormerConfig = { hiddenSize: 8, numLayers: 2, numHeads: 2, intermediateSize: 12, encoderHiddenSize: 6, numQueryTokens: 3, crossAttentionFrequency: 2, initStd: 0.3 };
const IMG = 63;
const lm = (hiddenSize: number) => new Model({ vocabSize: 64, hiddenSize, numLayers: 1, numHeads: 2, maxSeqLen: 32, positionEmbedding: 'none', seed: 3 });

describe('Q-Former: parity with the PyTorch Blip2QFormerModel reference (fixtures/qformer)', () => {
  const fx = loadFixtureSync(join(here, 'fixtures/qformer'));
  const model = lm(40);
  model.addMixin('feats', new FeatureSource());
  const mixin = model.addMixin('qformer', new QFormerConnectorMixin({ qformer: FIX, imageTokenId: IMG }));
  const res = loadBlip2QFormer(model, 'qformer', fx.weights!);

  it('loads query_tokens, qformer.* and language_projection.*; skips the text FFN and other towers', () => {
    expect(res.missing).toEqual([]);
    expect(res.unexpected).toEqual([]);
    expect(res.loaded.length).toBe(1 + 2 + 3 * 16 + 2 * 10 + 2);
    expect(res.skipped).toContain('qformer.encoder.layer.0.intermediate.dense.weight');
    expect(res.skipped).toContain('vision_model.post_layernorm.weight');
    expect(model.hasParam('qformer.qformer.encoder.layer.1.crossattention.attention.key.weight')).toBe(false);
  });

  it('last_hidden_state and language projection', () => {
    const out = mixin.qformer.forward(fx.io.toTensor('image_embeds'));
    assertParity(out.lastHiddenState, fx.io.toTensor('last_hidden_state'), 'last_hidden_state');
    assertParity(out.languageTokens, fx.io.toTensor('language_tokens'), 'language_tokens');
  });

  it('the wordEmbedding hook places the Q projected tokens at the placeholders', () => {
    const ids = expandImagePlaceholders([[1, IMG, 2], [IMG, 3, 4]], IMG, 6);
    const h0 = model.forward({ inputIds: ids, media: { features: fx.io.toTensor('image_embeds') } }, { outputHiddenStates: true }).hiddenStates![0]!;
    const want = fx.io.toTensor('language_tokens');
    assertParity(tf.slice(h0, [0, 1, 0], [1, 6, -1]), tf.slice(want, [0, 0, 0], [1, -1, -1]), 'row 0 image tokens');
    assertParity(tf.slice(h0, [1, 0, 0], [1, 6, -1]), tf.slice(want, [1, 0, 0], [1, -1, -1]), 'row 1 image tokens');
    const wte = model.param('transformer.word_embeddings.weight');
    assertClose(tf.slice(h0, [0, 7, 0], [1, 1, -1]).flatten(), tf.slice(wte, [2, 0], [1, -1]).flatten(), { rtol: 0, atol: 0, name: 'text position' });
  });
});

describe('Q-Former: bare Blip2QFormerModel names, padding mask, query embeds, hidden states (fixtures/qformer_extras)', () => {
  const dir = join(here, 'fixtures/qformer_extras');
  const io = loadFixtureSync(dir).io;
  const bare = openSafetensorsFile(join(dir, 'bare.safetensors'));

  it('loads the module\'s own state_dict (layernorm.*, encoder.layer.N.*) and query_tokens; outputs match HF', () => {
    const model = lm(40);
    const mixin = model.addMixin('qformer', new QFormerConnectorMixin({ qformer: FIX, imageTokenId: IMG }));
    const proj = Array.from(model.param('qformer.language_projection.weight').dataSync());
    const res = loadBlip2QFormer(model, 'qformer', bare);
    expect(res.missing).toEqual([]);
    expect(res.loaded).toContain('qformer.query_tokens');
    expect(res.loaded).toContain('qformer.qformer.encoder.layer.2.crossattention.attention.key.weight');
    expect(res.skipped).toContain('encoder.layer.0.intermediate.dense.weight'); // the text FFN
    expect(Array.from(model.param('qformer.language_projection.weight').dataSync())).toEqual(proj); // not in the file: untouched
    const mask = io.toTensor('encoder_attention_mask');
    const out = mixin.qformer.forward(io.toTensor('image_embeds'), undefined, undefined, { encoderAttentionMask: mask, queryEmbeds: io.toTensor('query_embeds'), outputHiddenStates: true });
    expect(out.hiddenStates).toHaveLength(FIX.numLayers + 1);
    out.hiddenStates!.forEach((h, i) => assertParity(h, io.toTensor(`hidden_states_${i}`), `hidden_states[${i}]`));
    assertParity(out.lastHiddenState, io.toTensor('last_hidden_state'), 'last_hidden_state');
    // without the mask, row 1's garbage features change its output; row 0 (all valid) does not change
    const unmasked = mixin.qformer.forward(io.toTensor('image_embeds'), undefined, undefined, { queryEmbeds: io.toTensor('query_embeds') });
    const diff = (r: number) => tf.max(tf.abs(tf.sub(tf.slice(unmasked.lastHiddenState, [r, 0, 0], [1, -1, -1]), tf.slice(out.lastHiddenState, [r, 0, 0], [1, -1, -1])))).dataSync()[0]!;
    expect(diff(0)).toBe(0);
    expect(diff(1)).toBeGreaterThan(1e-2);
    model.dispose();
  });

  it('strict bare load names what is missing; shapes of the new inputs are checked', () => {
    const model = lm(40);
    const mixin = model.addMixin('qformer', new QFormerConnectorMixin({ qformer: { ...FIX, numLayers: 4 }, imageTokenId: IMG }));
    expect(() => loadBlip2QFormer(model, 'qformer', bare)).toThrow(/qformer\.qformer\.encoder\.layer\.3\./);
    const f = randn([2, 10, 24]);
    expect(() => mixin.qformer.forward(f, undefined, undefined, { encoderAttentionMask: tf.ones([2, 9]) })).toThrow(/encoderAttentionMask: expected shape \[2, 10\].*got \[2, 9\]/);
    expect(() => mixin.qformer.forward(f, undefined, undefined, { queryEmbeds: tf.ones([2, 5, 32]) })).toThrow(/queryEmbeds: expected shape \[2, 6, 32\] \(batch, numQueryTokens, hiddenSize\), got \[2, 5, 32\]/);
    model.dispose();
  });

  it('finite-difference gradients w.r.t. query embeds under a padding mask; no leaks', () => {
    const q = new QFormer(new ParamStore(5), 'q.', TINY, 8);
    const feats = randn([2, 4, 6]);
    const mask = tf.tensor2d([[1, 1, 1, 1], [1, 1, 0, 0]], undefined, 'int32');
    assertGradients((qe) => tf.sum(tf.square(q.forward(feats, undefined, undefined, { queryEmbeds: qe, encoderAttentionMask: mask }).lastHiddenState)), [randn([2, 3, 8])], { label: 'dL/dqueryEmbeds' });
    assertNoLeak(() => {
      const o = q.forward(feats, undefined, undefined, { encoderAttentionMask: mask, outputHiddenStates: true });
      tf.dispose([o.lastHiddenState, o.languageTokens, ...o.hiddenStates!]);
    });
  });
});

describe('Q-Former: structure, gradients, leaks', () => {
  it('cross-attention only on layers i % frequency == 0', () => {
    const store = new ParamStore(0);
    const q = new QFormer(store, 'q.', { ...TINY, numLayers: 5, crossAttentionFrequency: 2 }, 4);
    expect([0, 1, 2, 3, 4].map((l) => store.has(`q.qformer.encoder.layer.${l}.crossattention.attention.key.weight`))).toEqual([true, false, true, false, true]);
    expect(store.get('q.qformer.encoder.layer.0.crossattention.attention.key.weight').shape).toEqual([8, 6]);
    expect(q.hasCrossAttention(3)).toBe(false);
    store.dispose();
  });

  it('finite-difference gradients w.r.t. image features and parameters', () => {
    const store = new ParamStore(1);
    const q = new QFormer(store, 'q.', TINY, 5);
    const names = ['query_tokens', 'qformer.encoder.layer.0.crossattention.attention.key.weight', 'qformer.encoder.layer.1.attention.attention.query.weight', 'qformer.encoder.layer.1.output_query.LayerNorm.weight', 'language_projection.weight'];
    const ps = names.map((n) => tf.add(store.get(`q.${n}`), randn(store.get(`q.${n}`).shape, 0.1)));
    assertGradients((f, ...p) => q.forward(f!, Object.fromEntries(names.map((n, i) => [n, p[i]!]))).languageTokens, [randn([2, 4, 6]), ...ps], { label: 'qformer' });
    store.dispose();
  });

  it('end to end ViT -> Q-Former -> LM (BLIP-2 style features), differentiable w.r.t. pixels, no leaks', () => {
    const model = lm(8);
    model.addMixin('vision', new VisionEncoderMixin({
      vit: { imageSize: 4, patchSize: 2, hiddenSize: 6, numLayers: 1, numHeads: 2, intermediateSize: 8, activation: 'gelu', patchBias: true, preLayerNorm: false },
      selectLayer: -1, selectFeature: 'cls_patch', postNorm: true, initStd: 0.3,
    }));
    model.addMixin('qformer', new QFormerConnectorMixin({ qformer: TINY, imageTokenId: IMG }));
    const ids = tf.tensor2d([[IMG, IMG, IMG, 5]], undefined, 'int32');
    const px = randn([1, 3, 4, 4]);
    assertGradients((p) => model.forward({ inputIds: ids, media: { pixels: p! } }).logits, [px], { label: 'pixels -> logits', maxChecks: 16 });
    assertNoLeak(() => model.forward({ inputIds: ids, media: { pixels: px } }), { label: 'forward' });
    const qf = model.getMixin<QFormerConnectorMixin>('qformer');
    const f = randn([1, 5, 6]);
    assertNoLeak(() => qf.imageTokens(f), { label: 'imageTokens' });
    model.dispose();
  });
});

describe('Q-Former: errors', () => {
  it('bad configs and inputs', () => {
    expect(() => new QFormerConnectorMixin({ qformer: { ...TINY, hiddenSize: 9 }, imageTokenId: 1 })).toThrow(/qformer.hiddenSize: expected a multiple of numHeads 2, got 9/);
    expect(() => new QFormerConnectorMixin({ qformer: { ...TINY, numQueryTokens: 0 }, imageTokenId: 1 })).toThrow(/qformer.numQueryTokens: expected a positive integer, got 0/);
    expect(() => lm(8).addMixin('q', new QFormerConnectorMixin({ qformer: { ...TINY, outputSize: 7 }, imageTokenId: 1 }))).toThrow(/qformer.outputSize: expected the model's hiddenSize 8, got 7/);
    const model = lm(8);
    model.addMixin('feats', new FeatureSource());
    const m = model.addMixin('q', new QFormerConnectorMixin({ qformer: TINY, imageTokenId: IMG }));
    expect(() => m.qformer.forward(tf.zeros([1, 4, 5]))).toThrow(/features: expected shape \[B, N, 6\] \(qformer.encoderHiddenSize\), got \[1, 4, 5\]/);
    expect(() => model.forward({ inputIds: [[IMG, IMG, 1]], media: { features: tf.zeros([1, 4, 6]) } }))
      .toThrow(/q: row 0 of inputIds has 2 image placeholder token\(s\) \(id 63\) but 3 image tokens were projected/);
    model.dispose();
  });
});
