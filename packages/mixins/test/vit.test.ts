import * as tf from '@tensorflow/tfjs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Mixin, Model, ParamStore, Rng, type HookImpls } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { VISION_FEATURES } from '../src/common.js';
import { assertParity } from './helpers.js';
import {
  loadClipVision,
  quickGelu,
  resizeMatrix,
  resizePositionGrid,
  VisionEncoderMixin,
  VitEncoder,
  type VitConfig,
} from '../src/vision/vit.js';

const here = dirname(fileURLToPath(import.meta.url));
const rng = new Rng('vit-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);

/** max |a - e| <= 1e-4 * max |e| (relative error of the whole tensor), plus elementwise rtol 1e-4. */

const FIX = { imageSize: 16, patchSize: 4, hiddenSize: 32, numLayers: 3, numHeads: 4, intermediateSize: 64 } satisfies VitConfig;
const TINY = { imageSize: 4, patchSize: 2, hiddenSize: 8, numLayers: 2, numHeads: 2, intermediateSize: 12 } satisfies VitConfig;

function lmModel(): Model {
  return new Model({ vocabSize: 16, hiddenSize: 8, numLayers: 1, numHeads: 2, maxSeqLen: 32 });
}

describe('ViT: parity with the PyTorch CLIP vision reference (fixtures/vit)', () => {
  const fx = loadFixtureSync(join(here, 'fixtures/vit'));
  const model = lmModel();
  const mixin = model.addMixin('vision', new VisionEncoderMixin({ vit: { ...FIX, interpolatePositions: true } }));
  const res = loadClipVision(model, 'vision', fx.weights!);
  const io = (n: string) => fx.io.toTensor(n);

  it('loads vision_model.* by prefix replacement only', () => {
    expect(res.missing).toEqual([]);
    expect(res.unexpected).toEqual([]);
    expect(res.loaded.length).toBe(5 + 3 * 16 + 2);
    expect(res.loaded).toContain('vision.encoder.layers.2.mlp.fc2.bias');
  });

  it('hidden_states, last_hidden_state, pooled_output', () => {
    const pixels = io('pixels');
    const out = mixin.encoder.forward(pixels, { outputHiddenStates: true });
    expect(out.hiddenStates!.length).toBe(4);
    assertParity(tf.stack(out.hiddenStates!), io('hidden_states'), 'hidden_states');
    assertParity(out.lastHiddenState, io('last_hidden_state'), 'last_hidden_state');
    assertParity(mixin.encoder.pooled(pixels), io('pooled'), 'pooled');
  });

  it('LLaVA features (select layer -2, patch tokens) through the encodeMedia hook', () => {
    const pixels = io('pixels');
    assertParity(mixin.encode(pixels), io('llava_features'), 'encode');
    // through a model forward: encodeMedia writes VISION_FEATURES, which a later hook reads
    let seen: number[] = [];
    const probe = model.addMixin('probe', new (class extends Mixin {
      hooks(): HookImpls {
        return {
          wordEmbedding: (ids, ctx, next) => {
            const f = ctx.state.require(VISION_FEATURES, 'probe');
            seen = [...f.shape];
            assertParity(f, io('llava_features'), 'state features');
            return next(ids, ctx);
          },
        };
      }
    })());
    model.forward({ inputIds: [[1, 2], [3, 4]], media: { pixels } }).logits.dispose();
    model.removeMixin(probe.name);
    expect(seen).toEqual([2, 16, 32]);
  });

  it('position interpolation to a 6x5 grid matches F.interpolate bicubic / bilinear', () => {
    assertParity(mixin.encoder.positionEmbedding(6, 5), io('pos_bicubic_6x5'), 'bicubic');
    const table = model.param('vision.embeddings.position_embedding.weight');
    const bil = tf.concat([tf.slice(table, [0, 0], [1, -1]), resizePositionGrid(tf.slice(table, [1, 0], [16, -1]), 4, 4, 6, 5, 'bilinear')]);
    assertParity(bil, io('pos_bilinear_6x5'), 'bilinear');
    assertParity(mixin.encoder.forward(io('pixels_interp')).lastHiddenState, io('last_hidden_state_interp'), 'interp forward');
  });
});

describe('ViT: identities and sanity', () => {
  it('resizing the position grid to the same size is the identity (bicubic and bilinear)', () => {
    for (const mode of ['bicubic', 'bilinear'] as const) {
      const m = resizeMatrix(5, 5, mode);
      const eye = Float32Array.from({ length: 25 }, (_, i) => (i % 6 === 0 ? 1 : 0));
      assertClose(m, eye, { atol: 0, rtol: 0, name: `${mode} matrix` });
      const g = randn([12, 3]);
      assertClose(resizePositionGrid(g, 3, 4, 3, 4, mode), g, { atol: 0, rtol: 0 });
    }
    // the encoder's table at the training grid is returned unchanged
    const store = new ParamStore(0);
    const enc = new VitEncoder(store, 'v.', TINY);
    assertClose(enc.positionEmbedding(2, 2), store.get('v.embeddings.position_embedding.weight'), { atol: 0, rtol: 0 });
    store.dispose();
  });

  it('resize rows sum to 1 (partition of unity) when upsampling and downsampling', () => {
    for (const [a, b] of [[4, 7], [7, 3], [2, 9]] as const) {
      for (const mode of ['bicubic', 'bilinear'] as const) {
        const m = resizeMatrix(a, b, mode);
        for (let r = 0; r < b; r++) expect(m.slice(r * a, (r + 1) * a).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
      }
    }
  });

  it('quick_gelu equals x * sigmoid(1.702 x)', () => {
    assertClose(quickGelu(tf.tensor1d([-2, 0, 1.5])), [-2 / (1 + Math.exp(3.404)), 0, 1.5 / (1 + Math.exp(-2.553))], { rtol: 1e-6 });
  });

  it('patch embedding as a matmul equals a strided conv', () => {
    const store = new ParamStore(1);
    const enc = new VitEncoder(store, 'v.', { ...TINY, preLayerNorm: false, classToken: false, patchBias: true });
    const px = randn([2, 3, 4, 4]);
    const got = tf.sub(enc.embed(px), store.get('v.embeddings.position_embedding.weight'));
    const w = tf.transpose(store.get('v.embeddings.patch_embedding.weight'), [2, 3, 1, 0]); // [p, p, in, out]
    const conv = tf.add(tf.conv2d(tf.transpose(px, [0, 2, 3, 1]) as tf.Tensor4D, w as tf.Tensor4D, 2, 'valid'), store.get('v.embeddings.patch_embedding.bias'));
    assertClose(got, tf.reshape(conv, [2, 4, 8]), { rtol: 1e-5, atol: 1e-6 });
    store.dispose();
  });

  it('ViT-style options (gelu, patch bias, no pre-LN, no class token, post-norm features) run', () => {
    const store = new ParamStore(2);
    const enc = new VitEncoder(store, 'v.', { ...TINY, activation: 'gelu', patchBias: true, preLayerNorm: false, classToken: false, layerNormEps: 1e-12 });
    expect(store.has('v.embeddings.class_embedding')).toBe(false);
    expect(store.get('v.embeddings.position_embedding.weight').shape).toEqual([4, 8]);
    const f = enc.features(randn([1, 3, 4, 4]), { selectLayer: -1, selectFeature: 'cls_patch', postNorm: true });
    expect(f.shape).toEqual([1, 4, 8]);
    store.dispose();
  });
});

describe('ViT: gradients and leaks', () => {
  it('finite-difference gradients w.r.t. pixels and parameters', () => {
    const store = new ParamStore(3);
    const enc = new VitEncoder(store, 'v.', { ...TINY, interpolatePositions: true }, { initStd: 0.3 });
    const names = ['embeddings.patch_embedding.weight', 'embeddings.position_embedding.weight', 'embeddings.class_embedding', 'encoder.layers.0.self_attn.q_proj.weight', 'encoder.layers.1.mlp.fc1.weight', 'pre_layrnorm.weight'];
    const px = randn([2, 3, 4, 4]);
    const init = names.map((n) => tf.add(store.get(`v.${n}`), randn(store.get(`v.${n}`).shape, 0.1)));
    assertGradients((x, ...ps) => enc.features(x!, { selectLayer: -1, selectFeature: 'cls_patch' }, Object.fromEntries(names.map((n, i) => [n, ps[i]!]))), [px, ...init], { label: 'vit features' });
    // through the interpolated position table (bicubic, 2x2 -> 3x2 grid)
    const px2 = randn([1, 3, 6, 4]);
    assertGradients((x, pos) => enc.features(x!, { selectLayer: 1 }, { 'embeddings.position_embedding.weight': pos! }), [px2, init[1]!], { label: 'vit interpolated positions' });
    store.dispose();
  });

  it('no tensor leak in encode, forward with hidden states and a model forward', () => {
    const model = lmModel();
    const mixin = model.addMixin('vision', new VisionEncoderMixin({ vit: { ...TINY, interpolatePositions: true } }));
    const px = randn([2, 3, 4, 4]);
    assertNoLeak(() => mixin.encode(px), { label: 'encode' });
    const px5 = randn([2, 2, 3, 6, 6]);
    assertNoLeak(() => mixin.encode(px5), { label: 'encode (several media, interpolated)' });
    assertNoLeak(() => mixin.encoder.forward(px, { outputHiddenStates: true }), { label: 'forward' });
    assertNoLeak(() => model.forward({ inputIds: [[1], [2]], media: { pixels: px } }), { label: 'model.forward' });
    model.dispose();
  });
});

describe('ViT: errors', () => {
  it('bad configs and inputs name the argument, expected and actual', () => {
    const store = new ParamStore(4);
    expect(() => new VitEncoder(store, 'a.', { ...TINY, imageSize: 5 })).toThrow(/vit.imageSize: expected a multiple of patchSize 2, got 5/);
    expect(() => new VitEncoder(store, 'b.', { ...TINY, hiddenSize: 7 })).toThrow(/vit.hiddenSize/);
    expect(() => new VitEncoder(store, 'c.', { ...TINY, activation: 'relu' as never })).toThrow(/vit.activation: expected 'quick_gelu'/);
    expect(() => new VitEncoder(store, 'd.', { ...TINY, pooling: 'mean' as never })).toThrow(/vit.pooling: expected 'cls', 'map' or 'none', got "mean"/);
    expect(() => new VitEncoder(store, 'e.', { ...TINY, classToken: false, pooling: 'cls' })).toThrow(/vit.pooling: 'cls' needs classToken and postLayerNorm/);
    expect(() => new VitEncoder(store, 'f.', { ...TINY, postLayerNorm: false, pooling: 'map' })).toThrow(/vit.pooling: 'map' needs postLayerNorm/);
    const noPool = new VitEncoder(store, 'g.', { ...TINY, classToken: false });
    expect(noPool.config.pooling).toBe('none');
    expect(() => noPool.pooled(tf.zeros([1, 3, 4, 4]))).toThrow(/pooled: the vit config has pooling 'none'/);
    const enc = new VitEncoder(store, 'v.', TINY);
    expect(() => enc.embed(tf.zeros([1, 1, 4, 4]))).toThrow(/pixels: expected shape \[B, 3, H, W\], got \[1, 1, 4, 4\]/);
    expect(() => enc.embed(tf.zeros([1, 3, 5, 4]))).toThrow(/multiples of patchSize 2, got 5x4/);
    expect(() => enc.embed(tf.zeros([1, 3, 6, 6]))).toThrow(/expected 4x4 images .* got 6x6; set interpolatePositions/);
    expect(() => enc.features(tf.zeros([1, 3, 4, 4]), { selectLayer: 3 })).toThrow(/selectLayer: expected an integer in \[-3, 2\].* got 3/);
    expect(() => new VisionEncoderMixin({ vit: TINY, selectLayer: -4 })).toThrow(/selectLayer/);
    store.dispose();
    const model = lmModel();
    model.addMixin('vision', new VisionEncoderMixin({ vit: TINY }));
    expect(() => model.forward({ inputIds: [[1]], media: { pixels: tf.zeros([2, 3, 4, 4]) } })).toThrow(/media.pixels: expected batch 1/);
    model.dispose();
  });
});

describe('ViT sin-cos position init', () => {
  it('fills the MAE 2-D table (class row zero) and rejects bad configs', async () => {
    const { sincos2d, resolveVitConfig } = await import('../src/vision/vit.js');
    const t = sincos2d(2, 8, true); // q = 2
    const row = (r: number) => Array.from(t.slice(r * 8, r * 8 + 8));
    expect(row(0)).toEqual(new Array(8).fill(0));
    // patch (y=0, x=1): row half = sin(0), sin(0), cos(0), cos(0); column half with w = [1, 1/100]
    const r = row(2).map((v) => +v.toFixed(6));
    expect(r).toEqual([0, 0, 1, 1, +Math.sin(1).toFixed(6), +Math.sin(0.01).toFixed(6), +Math.cos(1).toFixed(6), +Math.cos(0.01).toFixed(6)].map((v) => +Math.fround(v).toFixed(6)));
    const base = { imageSize: 8, patchSize: 4, hiddenSize: 6, numLayers: 1, numHeads: 2, intermediateSize: 8 };
    expect(() => resolveVitConfig({ ...base, positionInit: 'sincos2d' })).toThrow(/'sincos2d' needs hiddenSize divisible by 4, got 6/);
    expect(() => resolveVitConfig({ ...base, positionInit: 'rope' as 'normal' })).toThrow(/vit.positionInit: expected 'normal' or 'sincos2d', got "rope"/);
  });
});
