import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Mixin, Model, Rng, type ForwardContext, type HookImpls } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, compareTensors, loadFixtureSync } from '@vlmix/core/testkit';
import {
  PerceiverResamplerMixin, perceiverParamSpecs, perceiverResample, resolvePerceiverOptions, type PerceiverResamplerOptions,
} from '../src/connectors/perceiver.js';
import { MEDIA_LATENTS, VISION_FEATURES } from '../src/common.js';

const FIX = join(import.meta.dirname, 'fixtures', 'perceiver_resampler');
const rng = new Rng('perceiver-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);

const FX_OPTS: PerceiverResamplerOptions = { dim: 32, depth: 2, dimHead: 8, heads: 4, numLatents: 8, ffMult: 2 };
const tinyModel = () => new Model({ vocabSize: 16, hiddenSize: 32, numLayers: 1, numHeads: 4, maxSeqLen: 16, seed: 3 });

describe('PerceiverResampler: open_flamingo fixture', () => {
  it('matches the reference output (rel. error <= 1e-4) through the mixin, with the reference names', () => {
    const fx = loadFixtureSync(FIX);
    const model = tinyModel();
    const mixin = model.addMixin('perceiver', new PerceiverResamplerMixin(FX_OPTS));
    const W = fx.weights!;
    // every reference tensor has a parameter of the same name under the prefix, and vice versa
    expect(new Set(mixin.paramNames())).toEqual(new Set(W.names().map((n) => `perceiver.${n}`)));
    const sd = new Map(W.names().map((n) => [`perceiver.${n}`, W.toTensor(n)] as const));
    const r = model.loadStateDict(sd, { strict: false });
    expect(r.unexpected).toEqual([]);
    expect(r.loaded).toHaveLength(W.names().length);
    const x = fx.io.toTensor('x');
    const want = fx.io.toTensor('latents');
    const got = mixin.resample(x);
    expect(got.shape).toEqual([2, 1, 8, 32]);
    const res = assertClose(got, want, { rtol: 1e-4, atol: 1e-5, name: 'perceiver latents' });
    expect(res.maxAbs / tf.max(tf.abs(want)).dataSync()[0]!).toBeLessThan(1e-4);
    tf.dispose([...sd.values(), x, want, got]);
    model.dispose();
  });
});

describe('PerceiverResampler: module', () => {
  const o = resolvePerceiverOptions({ dim: 8, depth: 2, dimHead: 4, heads: 2, numLatents: 3, ffMult: 2, maxNumFrames: 2, maxNumMedia: 2 });
  const params = new Map(perceiverParamSpecs(o).map((s) => [s.name, randn(s.shape, s.name.includes('norm') ? 0.1 : 0.5)] as const));
  for (const n of [...params.keys()]) if (/norm.*weight|\.1\.0\.weight/.test(n)) params.set(n, tf.add(params.get(n)!, 1));
  const get = (n: string) => params.get(n)!;

  it('creates frame_embs / media_time_embs only when configured, with the reference shapes', () => {
    const names = perceiverParamSpecs(o).map((s) => s.name);
    expect(names).toContain('frame_embs');
    expect(names).toContain('media_time_embs');
    expect(perceiverParamSpecs(o).find((s) => s.name === 'media_time_embs')!.shape).toEqual([2, 1, 8]);
    expect(perceiverParamSpecs(resolvePerceiverOptions(FX_OPTS)).map((s) => s.name)).not.toContain('frame_embs');
  });

  it('output shape [b, T, n, D]; frame and media-time embeddings change the result', () => {
    const x = randn([2, 2, 2, 5, 8]);
    const y = perceiverResample(x, get, o);
    expect(y.shape).toEqual([2, 2, 3, 8]);
    const y2 = perceiverResample(x, get, { ...o, maxNumFrames: null, maxNumMedia: null });
    expect(compareTensors(y, y2, { atol: 1e-3 }).ok).toBe(false);
    // each media item is resampled independently: media 1 alone (as T=1) equals slice 1 of T=2 without time embs
    const one = perceiverResample(tf.slice(x, [0, 1, 0, 0, 0], [2, 1, -1, -1, -1]), get, { ...o, maxNumFrames: null, maxNumMedia: null });
    assertClose(one, tf.slice(y2, [0, 1, 0, 0], [2, 1, -1, -1]), { atol: 1e-5, name: 'per-media independence' });
  });

  it('finite-difference gradients w.r.t. the input and parameters', () => {
    const x = randn([1, 1, 2, 3, 8]);
    const names = ['latents', 'layers.0.0.to_q.weight', 'layers.1.0.to_kv.weight', 'layers.0.1.1.weight', 'frame_embs', 'norm.bias'];
    const f = (...xs: tf.Tensor[]) => {
      const local = new Map(params);
      names.forEach((n, i) => local.set(n, xs[i + 1]!));
      return perceiverResample(xs[0]!, (n) => local.get(n)!, o);
    };
    assertGradients(f, [x, ...names.map((n) => get(n).clone())], { label: 'perceiver', maxChecks: 24 });
  });

  it('does not leak tensors (forward, and a gradient step)', () => {
    const x = randn([2, 1, 1, 4, 8]);
    assertNoLeak(() => perceiverResample(x, get, o), { label: 'perceiver forward' });
    assertNoLeak(() => tf.grad((l: tf.Tensor) => tf.sum(perceiverResample(x, (n) => (n === 'latents' ? l : get(n)), o)))(get('latents')), { label: 'perceiver grad' });
  });

  it('errors name the argument, the expected and the actual shape', () => {
    expect(() => perceiverResample(randn([2, 4, 8]), get, o)).toThrow(/x: expected rank 5, got rank 3/);
    expect(() => perceiverResample(randn([1, 1, 1, 4, 6]), get, o)).toThrow(/x: expected feature width \(last dim\) 8, got shape \[1, 1, 1, 4, 6\]/);
    expect(() => perceiverResample(randn([1, 1, 3, 4, 8]), get, o)).toThrow(/3 frames exceed perceiver.maxNumFrames 2/);
    expect(() => new PerceiverResamplerMixin({ dim: 8, heads: 0 })).toThrow(/perceiver.heads: expected a positive integer, got 0/);
  });
});

/** A stand-in vision mixin: writes fixed features into VISION_FEATURES (encodeMedia). */
class FakeVision extends Mixin {
  constructor(readonly feats: tf.Tensor) {
    super();
  }
  hooks(): HookImpls {
    return { encodeMedia: (f, ctx, next) => next(f, ctx).with(VISION_FEATURES, this.feats as tf.Tensor3D, this.name) };
  }
}

/** Captures MEDIA_LATENTS (kept) for inspection: an encodeMedia hook added after the perceiver sees its output. */
class Probe extends Mixin {
  seen: tf.Tensor | null = null;
  hooks(): HookImpls {
    return {
      encodeMedia: (f, ctx, next) => {
        const out = next(f, ctx);
        this.seen?.dispose();
        const m = out.get(MEDIA_LATENTS);
        this.seen = m ? tf.keep(m.clone()) : null;
        return out;
      },
    };
  }
}

describe('PerceiverResamplerMixin in a model', () => {
  const opts: PerceiverResamplerOptions = { dim: 32, depth: 1, dimHead: 8, heads: 2, numLatents: 4, ffMult: 2 };

  it('reads VISION_FEATURES [B, N, D] (T = F = 1) and writes MEDIA_LATENTS [B, 1, L, D] in encodeMedia', () => {
    const model = tinyModel();
    const feats = randn([2, 6, 32]);
    model.addMixin('vision', new FakeVision(feats));
    const pr = model.addMixin('perceiver', new PerceiverResamplerMixin(opts));
    const probe = model.addMixin('probe', new Probe());
    const out = model.forward({ inputIds: [[1, 2, 3], [4, 5, 6]] });
    expect(probe.seen!.shape).toEqual([2, 1, 4, 32]);
    assertClose(probe.seen!, pr.resample(feats), { atol: 1e-6, name: 'media.latents' });
    out.logits.dispose();
    probe.seen!.dispose();
    model.dispose();
  });

  it('falls back to ctx.media.visionFeatures; does nothing without features; checks the batch', () => {
    const model = tinyModel();
    model.addMixin('perceiver', new PerceiverResamplerMixin(opts));
    const probe = model.addMixin('probe', new Probe());
    const feats = randn([1, 2, 5, 32]);
    tf.dispose(model.forward({ inputIds: [[1, 2]], media: { visionFeatures: feats } }).logits);
    expect(probe.seen!.shape).toEqual([1, 2, 4, 32]);
    tf.dispose(model.forward({ inputIds: [[1, 2]] }).logits);
    expect(probe.seen).toBeNull();
    expect(() => model.forward({ inputIds: [[1, 2], [3, 4]], media: { visionFeatures: feats } })).toThrow(
      /ctx.media\['visionFeatures'\]: expected batch 2 \(as inputIds\), got shape \[1, 2, 5, 32\]/,
    );
    assertNoLeak(() => model.forward({ inputIds: [[1, 2]], media: { visionFeatures: feats } }).logits, { label: 'model + perceiver forward' });
    model.dispose();
  });

  it('trains: a gradient step through the model reaches the latents and leaks nothing', () => {
    const model = tinyModel();
    model.addMixin('perceiver', new PerceiverResamplerMixin(opts));
    // make the LM depend on media.latents: a tiny mixin adding their mean to the embeddings
    class UseLatents extends Mixin {
      hooks(): HookImpls {
        return {
          wordEmbedding: (ids: tf.Tensor, ctx: ForwardContext, next: (ids: tf.Tensor, ctx: ForwardContext) => tf.Tensor) => {
            const m = ctx.state.require(MEDIA_LATENTS, 'use');
            return tf.add(next(ids, ctx), tf.reshape(tf.mean(m, [1, 2]), [m.shape[0]!, 1, -1]));
          },
        };
      }
    }
    model.addMixin('use', new UseLatents());
    const feats = randn([1, 3, 32]);
    const latents = model.param('perceiver.latents');
    const opt = tf.train.sgd(0.1);
    const step = () => {
      const before = latents.clone();
      opt.minimize(() => model.loss({ inputIds: [[1, 2, 3]], media: { visionFeatures: feats } }, tf.tensor2d([[2, 3, 4]], undefined, 'int32')), false, [latents]);
      const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(latents, before))).dataSync()[0]!);
      before.dispose();
      return moved;
    };
    expect(step()).toBeGreaterThan(0);
    assertNoLeak(() => void step(), { label: 'perceiver training step' });
    opt.dispose();
    model.dispose();
  });
});
