import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLlama, generate, KVCache, Mixin, type ContextHost, type HookImpls, type Model } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, atLayer, compareTensors, loadFixtureSync } from '@vlmix/core/testkit';
import { cogvlmPositionIds, cogvlmToVlmix, VisualExpertMixin, visionExpertMask, visualExpertNames } from '../src/deep/visual-expert.js';

const FIX = join(import.meta.dirname, 'fixtures', 'visual_expert');

const tiny = (seed = 0, extra: Record<string, unknown> = {}): Model =>
  createLlama({ vocabSize: 64, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 48, normEps: 1e-5, maxSeqLen: 64, seed, ...extra });

function relErr(got: tf.Tensor, want: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]! / tf.max(tf.abs(want)).dataSync()[0]!);
}

describe('routing and position rules (CogVLM get_expert_mask, build_position_ids)', () => {
  it('the last token of each image span goes to the language expert', () => {
    expect([...visionExpertMask([0, 1, 1, 1, 0, 1, 1], 1, 7)]).toEqual([0, 1, 1, 0, 0, 1, 0]);
    expect([...visionExpertMask([1, 1, 0, 1], 1, 4)]).toEqual([1, 0, 0, 0]);
  });
  it('interior image tokens share one position; boi/eoi count as text', () => {
    expect([...cogvlmPositionIds([0, 0, 1, 1, 1, 1, 1, 0, 0], 1, 9)]).toEqual([0, 1, 2, 3, 3, 3, 4, 5, 6]);
    expect([...cogvlmPositionIds([1, 1, 1, 1, 0], 1, 5)]).toEqual([0, 1, 1, 2, 3]);
    expect([...cogvlmPositionIds([0, 1, 0, 1, 1, 0], 1, 6)]).toEqual([0, 1, 2, 3, 4, 5]);
  });
  it('match the fixture position ids', () => {
    const fx = loadFixtureSync(FIX);
    const tt = fx.io.toInt32('token_type_ids');
    expect([...cogvlmPositionIds(tt, 2, 12)]).toEqual([...fx.io.toInt32('position_ids')]);
  });
});

describe('visual expert: fixture (torch re-implementation of CogVLM decoder layers)', () => {
  it('logits and layer-1 hidden state match (rel. error <= 1e-4); CogVLM names load strictly', () => {
    const fx = loadFixtureSync(FIX);
    const W = fx.weights!;
    const src = new Map(W.names().map((n) => [n, W.toTensor(n)] as const));
    const model = tiny();
    model.addMixin('vexpert', new VisualExpertMixin());
    const sd = cogvlmToVlmix(src, 2);
    const r = model.loadStateDict(sd, { strict: true });
    expect(r.missing).toEqual([]);
    const inputIds = fx.io.toTensor('input_ids');
    const tokenTypes = fx.io.toTensor('token_type_ids');
    const out = model.forward({ inputIds, tokenTypes }, { outputHiddenStates: true });
    const want = fx.io.toTensor('logits');
    expect(relErr(out.logits, want)).toBeLessThan(1e-4);
    assertClose(out.logits, want, { rtol: 1e-4, atol: 1e-4, name: 'logits' });
    expect(relErr(out.hiddenStates![1]!, fx.io.toTensor('hidden_layer1'))).toBeLessThan(1e-4);
    // the vision expert matters here: dropping it (all text) changes the logits
    const textOnly = model.forward({ inputIds, tokenTypes: tf.zerosLike(tokenTypes) }).logits;
    expect(compareTensors(textOnly, want, { atol: 1e-2 }).ok).toBe(false);
    tf.dispose([...src.values(), ...sd.values()]);
    model.dispose();
  });
});

const IDS = [
  [3, 9, 10, 11, 12, 13, 14, 4, 5, 6, 7, 8],
  [20, 21, 22, 23, 2, 2, 30, 31, 32, 40, 41, 42],
];
const TT = [
  [0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
  [1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0],
];

describe('VisualExpertMixin in a model', () => {
  it('reinit copies the language weights: outputs equal the base model for any token types', () => {
    const base = tiny(7);
    const withExpert = tiny(7);
    withExpert.addMixin('vexpert', new VisualExpertMixin(), { reinit: true });
    const tokenTypes = tf.tensor2d(TT, undefined, 'int32');
    const positionIds = tf.tensor2d(cogvlmPositionIds(TT.flat(), 2, 12), [2, 12], 'int32');
    const want = base.forward({ inputIds: IDS, positionIds }).logits;
    assertClose(withExpert.forward({ inputIds: IDS, tokenTypes }).logits, want, { rtol: 1e-5, atol: 1e-5, name: 'reinit expert = base (CogVLM positions)' });
    const withoutPos = tiny(7);
    withoutPos.addMixin('vexpert', new VisualExpertMixin({ cogvlmPositions: false }), { reinit: true });
    assertClose(withoutPos.forward({ inputIds: IDS, tokenTypes }).logits, base.forward({ inputIds: IDS }).logits, { rtol: 1e-5, atol: 1e-5, name: 'reinit expert = base (default positions)' });
    // without reinit the vision expert differs, but a text-only pass is still exactly the base
    const fresh = tiny(7);
    fresh.addMixin('vexpert', new VisualExpertMixin());
    expect(compareTensors(fresh.forward({ inputIds: IDS, tokenTypes }).logits, want, { atol: 1e-4 }).ok).toBe(false);
    assertClose(fresh.forward({ inputIds: IDS, tokenTypes: tf.zeros([2, 12], 'int32') }).logits, base.forward({ inputIds: IDS }).logits, { rtol: 0, atol: 0 });
    assertClose(fresh.forward({ inputIds: IDS }).logits, base.forward({ inputIds: IDS }).logits, { rtol: 0, atol: 0 });
    [base, withExpert, withoutPos, fresh].forEach((m) => m.dispose());
  });

  it('KV-cached decoding equals the uncached pass (positions continue from cache.meta); generate agrees', () => {
    const model = tiny(3);
    model.addMixin('vexpert', new VisualExpertMixin());
    const tokenTypes = tf.tensor2d(TT, undefined, 'int32');
    const full = model.forward({ inputIds: IDS, tokenTypes }).logits;
    const cache = new KVCache(2);
    const P = 10; // both rows' image spans are inside the prompt
    const parts = [model.forward({ inputIds: IDS.map((r) => r.slice(0, P)), tokenTypes: tf.slice(tokenTypes, [0, 0], [2, P]), cache }).logits];
    parts.push(model.forward({ inputIds: IDS.map((r) => [r[P]!]), tokenTypes: tf.zeros([2, 1], 'int32'), cache }).logits);
    parts.push(model.forward({ inputIds: IDS.map((r) => [r[P + 1]!]), cache }).logits); // no tokenTypes: text
    assertClose(tf.concat(parts, 1), full, { rtol: 1e-4, atol: 1e-5, name: 'cached vs uncached' });
    expect(cache.meta.get('vexpert.lastPosition')).toEqual([8, 10]); // span interiors share positions
    cache.dispose();
    const prompt = { inputIds: IDS.map((r) => r.slice(0, 8)) };
    const opts = { maxNewTokens: 4, greedy: true, inputs: { tokenTypes: tf.slice(tokenTypes, [0, 0], [2, 8]) } };
    const a = generate(model, prompt.inputIds, { ...opts, useCache: true });
    const b = generate(model, prompt.inputIds, { ...opts, useCache: false });
    expect(a.sequences).toEqual(b.sequences);
    model.dispose();
  });

  it('finite-difference gradients w.r.t. the layer input and the vision-expert weights', () => {
    const model = tiny(5);
    model.addMixin('vexpert', new VisualExpertMixin());
    const names = [`${visualExpertNames.qkv(0)}.weight`, `${visualExpertNames.dense(0)}.weight`, `${visualExpertNames.mlp(0, 'dense_h_to_4h_gate')}.weight`, 'transformer.layers.0.attention.query_key_value.weight'];
    const tt = tf.tensor2d([[0, 1, 1, 1, 0]], undefined, 'int32');
    const f = (...xs: tf.Tensor[]) => {
      const local = new Map(names.map((n, i) => [n, xs[i + 1]!] as const));
      const host: ContextHost = {
        config: model.config,
        param: (n) => (local.get(n) as tf.Variable | undefined) ?? model.param(n),
        hasParam: (n) => model.hasParam(n),
        resolveHook: (h, l) => model.resolveHook(h, l),
      };
      // the host stage routes the tokens; layer 0 runs with the local parameters
      const ctx = model.passContext({ inputIds: tf.zeros([1, 5], 'int32'), tokenTypes: tt }, { training: true, host });
      return atLayer(ctx, 0).run('layerForward', xs[0]!);
    };
    const h = tf.randomNormal([1, 5, 32], 0, 1, 'float32', 11);
    assertGradients(f, [h, ...names.map((n) => tf.mul(model.param(n), 10))], { label: 'visual expert layer', maxChecks: 24 });
    model.dispose();
  });

  it('no tensor leak in forward, cached decoding or a training step of the vision expert', () => {
    const model = tiny(6);
    model.addMixin('vexpert', new VisualExpertMixin());
    const tokenTypes = tf.tensor2d(TT, undefined, 'int32');
    assertNoLeak(() => model.forward({ inputIds: IDS, tokenTypes }).logits, { label: 'forward' });
    assertNoLeak(() => {
      const cache = new KVCache(2);
      tf.dispose(model.forward({ inputIds: IDS, tokenTypes, cache }).logits);
      tf.dispose(model.forward({ inputIds: [[1], [2]], cache }).logits);
      cache.dispose();
    }, { label: 'cached decoding' });
    const vars = model.params.list().filter((p) => p.component === 'vexpert').map((p) => p.variable);
    const labels = tf.tensor2d(IDS.map((r) => [...r.slice(1), 0]), undefined, 'int32');
    const opt = tf.train.adam(0.01);
    const w = model.param(`${visualExpertNames.qkv(1)}.weight`);
    const before = w.clone();
    const step = () => opt.minimize(() => model.loss({ inputIds: IDS, tokenTypes }, labels), false, vars);
    step();
    expect(compareTensors(w, before, { atol: 1e-6 }).ok).toBe(false);
    assertNoLeak(step, { label: 'training step' });
    opt.dispose();
    model.dispose();
  });

  it('token types from another mixin\'s tokenTypes hook (e.g. a projector marking its placeholders) are honoured', () => {
    const model = tiny(8);
    const tokenTypes = tf.tensor2d(TT, undefined, 'int32');
    class LateTypes extends Mixin {
      hooks(): HookImpls {
        return { tokenTypes: (host, next) => next(host) ?? Int32Array.from(TT.flat()) };
      }
    }
    model.addMixin('vexpert', new VisualExpertMixin());
    const want = model.forward({ inputIds: IDS, tokenTypes }).logits;
    model.addMixin('late', new LateTypes());
    assertClose(model.forward({ inputIds: IDS }).logits, want, { rtol: 1e-6, atol: 1e-6, name: 'late token types' });
    model.dispose();
  });

  it('errors are clear', () => {
    const model = tiny();
    model.addMixin('vexpert', new VisualExpertMixin());
    expect(() => model.forward({ inputIds: [[1, 2]], tokenTypes: tf.tensor2d([[0, 2]], undefined, 'int32') })).toThrow(/tokenTypes: expected 0 \(text\) or 1 \(vision\), got 2 at \[0, 1\]/);
    expect(() => model.forward({ inputIds: [[1, 2]], tokenTypes: tf.tensor2d([[0, 1, 1]], undefined, 'int32') })).toThrow(/tokenTypes: expected shape \[1, 2\], got \[1, 3\]/);
    expect(() => model.forward({ inputIds: [[1, 2]], tokenTypes: tf.tensor2d([[1, 1]], undefined, 'int32'), positionIds: tf.zeros([3, 1, 2], 'int32') })).toThrow(/CogVLM positions need positionIds \[B, T\], got \[3, 1, 2\]/);
    expect(() => model.addMixin('v2', new VisualExpertMixin())).toThrow(/hook 'attentionForward' is already served by mixin 'vexpert'/);
    expect(() => cogvlmToVlmix(new Map(), 1)).toThrow(/CogVLM checkpoint: missing tensor 'model.embed_tokens.weight'/);
    model.dispose();
  });
});
