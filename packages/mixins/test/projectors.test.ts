import * as tf from '@tensorflow/tfjs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KVCache, Mixin, Model, Rng, type HookImpls } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { assertParity, FeatureSource } from './helpers.js';
import {
  defaultProjectorPrefix,
  expandImagePlaceholders,
  loadProjector,
  ProjectorMixin,
  scatterImageTokens,
  type ProjectorConfig,
  type ProjectorKind,
} from '../src/connectors/projectors.js';

const here = dirname(fileURLToPath(import.meta.url));
const rng = new Rng('projectors-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);



const IMG = 31;
function lm(hiddenSize = 16): Model {
  return new Model({ vocabSize: 32, hiddenSize, numLayers: 1, numHeads: 2, intermediateSize: 24, maxSeqLen: 32, positionEmbedding: 'none', seed: 7 });
}

describe('projectors: parity with the PyTorch references (fixtures/projectors)', () => {
  const fx = loadFixtureSync(join(here, 'fixtures/projectors'));
  const cases: [string, ProjectorConfig, number][] = [
    ['linear', { kind: 'linear', inputSize: 12 }, 2],
    ['mlp2x', { kind: 'mlp2x_gelu', inputSize: 12 }, 4],
    ['minigptv2', { kind: 'minigpt_v2', inputSize: 12 }, 2],
    ['cogvlm', { kind: 'cogvlm_glu', inputSize: 12 }, 6],
  ];
  for (const [key, cfg, nParams] of cases) {
    it(`${key} (${cfg.kind})`, () => {
      const model = lm();
      const mixin = model.addMixin('proj', new ProjectorMixin({ projector: cfg, imageTokenId: IMG }));
      const kind = mixin.projector.config.kind;
      const res = loadProjector(model, 'proj', fx.weights!, { prefix: `${key}.${defaultProjectorPrefix(kind)}` });
      expect(res.missing).toEqual([]);
      expect(res.loaded.length).toBe(nParams);
      assertParity(mixin.projector.project(fx.io.toTensor('features')), fx.io.toTensor(`out_${key}`), key);
      model.dispose();
    });
  }
});

describe('LLaVA projector names: one loader for every naming (fixtures/projectors, torch LLaVA mlp2x_gelu / linear)', () => {
  const fx = loadFixtureSync(join(here, 'fixtures/projectors'));
  /** The fixture's projector tensors under new names (`{i}` = Sequential index, `{k}` = HF linear_k). */
  const renamed = (key: string, rename: (local: string) => string): Map<string, tf.Tensor> => {
    const pre = `${key}.model.mm_projector.`;
    return new Map(fx.weights!.names().filter((n) => n.startsWith(pre)).map((n) => [rename(n.slice(pre.length)), fx.weights!.toTensor(n)] as const));
  };
  const hf = (l: string) => l.replace(/^(\d+)\./, (_, i: string) => `linear_${Number(i) / 2 + 1}.`);
  const mlpNamings: [string, (l: string) => string][] = [
    ['model.mm_projector.*', (l) => `model.mm_projector.${l}`],
    ['mm_projector.*', (l) => `mm_projector.${l}`],
    ['bare 0.* / 2.*', (l) => l],
    ['HF multi_modal_projector.linear_1/2', (l) => `multi_modal_projector.${hf(l)}`],
    ['HF (>= 4.52) model.multi_modal_projector.linear_1/2', (l) => `model.multi_modal_projector.${hf(l)}`],
  ];
  for (const [what, rename] of mlpNamings) {
    it(`mlp2x_gelu from ${what}`, () => {
      const model = lm();
      const mixin = model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'mlp2x_gelu', inputSize: 12 }, imageTokenId: IMG }));
      const src = renamed('mlp2x', rename);
      src.set('model.layers.0.mlp.up_proj.weight', tf.zeros([2, 2])); // the rest of a checkpoint is skipped
      const res = loadProjector(model, 'proj', src);
      expect(res.loaded).toEqual(['proj.mm_projector.0.bias', 'proj.mm_projector.0.weight', 'proj.mm_projector.2.bias', 'proj.mm_projector.2.weight']);
      assertParity(mixin.projector.project(fx.io.toTensor('features')), fx.io.toTensor('out_mlp2x'), what);
      tf.dispose([...src.values()]);
      model.dispose();
    });
  }
  it('linear from bare weight/bias and from mm_projector.*; a missing half is an error naming it', () => {
    for (const rename of [(l: string) => l, (l: string) => `mm_projector.${l}`]) {
      const model = lm();
      const mixin = model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'linear', inputSize: 12 }, imageTokenId: IMG }));
      loadProjector(model, 'proj', renamed('linear', rename));
      assertParity(mixin.projector.project(fx.io.toTensor('features')), fx.io.toTensor('out_linear'), 'linear');
      model.dispose();
    }
    const model = lm();
    model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'mlp2x_gelu', inputSize: 12 }, imageTokenId: IMG }));
    const half = renamed('mlp2x', (l) => `multi_modal_projector.${hf(l)}`);
    half.delete('multi_modal_projector.linear_2.weight');
    expect(() => loadProjector(model, 'proj', half)).toThrow(/missing \(1\)(.|\n)*proj\.mm_projector\.2\.weight/);
    model.dispose();
  });
});

describe('projectors: placeholder scatter through the wordEmbedding hook', () => {
  it('writes projected tokens at placeholders in order, leaves text positions unchanged', () => {
    const model = lm();
    model.addMixin('feats', new FeatureSource());
    const mixin = model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'mlp2x_gelu', inputSize: 12 }, imageTokenId: IMG }));
    const ids = [[1, IMG, IMG, IMG, 5, 6], [IMG, 2, IMG, 3, IMG, 4]];
    const feats = randn([2, 3, 12]);
    const out = model.forward({ inputIds: ids, media: { features: feats } }, { outputHiddenStates: true });
    const h0 = out.hiddenStates![0]!; // wordEmbedding output (no learned positions)
    const wte = model.param('transformer.word_embeddings.weight');
    const proj = mixin.projector.project(feats);
    const rows = h0.arraySync() as number[][][];
    const pr = proj.arraySync() as number[][][];
    const table = wte.arraySync() as number[][];
    ids.forEach((row, b) => {
      let k = 0;
      row.forEach((id, t) => {
        const want = id === IMG ? pr[b]![k++]! : table[id]!;
        assertClose(rows[b]![t]!, want, { rtol: 0, atol: id === IMG ? 1e-6 : 0, name: `row ${b} pos ${t}` });
      });
    });
  });

  it('right above the base embedding the gather and the scatter run as one kernel: the bits of the two-step path, logits and gradients', async () => {
    /** Serves wordEmbedding beneath the connector (added first): the connector's next is then not the base. */
    class PassEmbedding extends Mixin {
      hooks(): HookImpls { return { wordEmbedding: (ids, ctx, next) => next(ids, ctx) }; }
    }
    const build = (pass: boolean) => {
      const model = lm();
      model.addMixin('feats', new FeatureSource());
      if (pass) model.addMixin('pass', new PassEmbedding());
      model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'mlp2x_gelu', inputSize: 12 }, imageTokenId: IMG }));
      return model;
    };
    const ids = [[1, IMG, IMG, IMG, 5, 6], [IMG, 2, IMG, 3, IMG, 4]];
    const feats = randn([2, 3, 12]);
    const labels = tf.tensor2d([[2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6]], [2, 6], 'int32');
    const bits = (t: tf.Tensor) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));
    const results = [];
    for (const pass of [false, true]) { // one at a time: tf.profile runs are not reentrant
      const model = build(pass);
      const info = await tf.profile(() => model.forward({ inputIds: ids, media: { features: feats } }).logits);
      tf.dispose(info.result as tf.Tensor);
      const names = info.kernels.map((k) => k.name);
      const vars = model.params.names().map((n) => model.param(n));
      const { value, grads } = tf.variableGrads(() => model.loss({ inputIds: ids, media: { features: feats } }, labels), vars);
      results.push({ names, out: [value, ...vars.map((v) => grads[v.name]!)] });
    }
    const [fused, plain] = results as [typeof results[0], typeof results[0]];
    expect(fused.names.filter((n) => n === 'VlmixEmbeddingScatter').length).toBe(1);
    expect(plain.names.filter((n) => n === 'VlmixEmbeddingScatter').length).toBe(0);
    expect(fused.out.map(bits)).toEqual(plain.out.map(bits));
    tf.dispose([labels, feats, ...fused.out, ...plain.out]);
  });

  it('sets ctx.tokenTypes to 1 at image positions when unset', () => {
    const model = lm();
    model.addMixin('feats', new FeatureSource());
    model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'linear', inputSize: 12 }, imageTokenId: IMG }));
    let types: number[][] = [];
    model.addMixin('probe', new (class extends Mixin {
      hooks(): HookImpls {
        return { mlpForward: (h, ctx, next) => ((types = ctx.tokenTypes!.arraySync() as number[][]), next(h, ctx)) };
      }
    })());
    model.forward({ inputIds: [[IMG, IMG, 3]], media: { features: randn([1, 2, 12]) } }).logits.dispose();
    expect(types).toEqual([[1, 1, 0]]);
  });

  it('text-only pass (no features, no placeholders) equals the base embedding', () => {
    const model = lm();
    model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'linear', inputSize: 12 }, imageTokenId: IMG }));
    const h0 = model.forward({ inputIds: [[1, 2, 3]] }, { outputHiddenStates: true }).hiddenStates![0]!;
    assertClose(h0, tf.gather(model.param('transformer.word_embeddings.weight'), tf.tensor2d([[1, 2, 3]], undefined, 'int32')), { rtol: 0, atol: 0 });
  });

  it('a cached decode step without placeholders passes through, and matches the uncached logits', () => {
    const model = lm();
    model.addMixin('feats', new FeatureSource());
    model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'linear', inputSize: 12 }, imageTokenId: IMG }));
    const feats = randn([1, 2, 12]);
    const cache = new KVCache(1);
    model.forward({ inputIds: [[1, IMG, IMG]], media: { features: feats }, cache }).logits.dispose();
    const step = model.forward({ inputIds: [[4]], media: { features: feats }, cache }).logits;
    const full = model.forward({ inputIds: [[1, IMG, IMG, 4]], media: { features: feats } }).logits;
    assertClose(step, tf.slice(full, [0, 3, 0], [1, 1, -1]), { rtol: 1e-4, atol: 1e-5, name: 'decode step' });
  });

  it('expandImagePlaceholders repeats each placeholder', () => {
    expect(expandImagePlaceholders([[1, IMG, 2], [IMG, 3, 4]], IMG, 3)).toEqual([[1, IMG, IMG, IMG, 2], [IMG, IMG, IMG, 3, 4]]);
  });
});

describe('projectors: gradients and leaks', () => {
  it('scatterImageTokens is differentiable w.r.t. embeddings and tokens', () => {
    const ids = tf.tensor2d([[IMG, 1, IMG], [2, IMG, IMG]], undefined, 'int32');
    assertGradients((e, t) => scatterImageTokens(e!, ids, t!, IMG), [randn([2, 3, 4]), randn([2, 2, 4])], { label: 'scatter' });
  });

  const kinds: [ProjectorKind, string[]][] = [
    ['linear', ['mm_projector.weight', 'mm_projector.bias']],
    ['mlp', ['mm_projector.0.weight', 'mm_projector.2.weight', 'mm_projector.2.bias']],
    ['minigpt_v2', ['llama_proj.weight']],
    ['cogvlm_glu', ['linear_proj.linear_proj.weight', 'linear_proj.norm1.weight', 'linear_proj.gate_proj.weight', 'linear_proj.dense_4h_to_h.weight']],
  ];
  for (const [kind, names] of kinds) {
    it(`${kind}: finite differences w.r.t. features and parameters`, () => {
      const model = lm(8);
      const mixin = model.addMixin('proj', new ProjectorMixin({ projector: { kind, inputSize: 6, intermediateSize: 10 }, imageTokenId: IMG }));
      const ps = names.map((n) => tf.add(model.param(`proj.${n}`), randn(model.param(`proj.${n}`).shape, 0.2)));
      assertGradients((f, ...p) => mixin.projector.project(f!, Object.fromEntries(names.map((n, i) => [n, p[i]!]))), [randn([2, 4, 6]), ...ps], { label: kind });
      model.dispose();
    });
  }

  it('end to end: logits are differentiable w.r.t. the vision features', () => {
    const model = lm(8);
    model.addMixin('feats', new FeatureSource());
    model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'mlp2x_gelu', inputSize: 6 }, imageTokenId: IMG }));
    const ids = tf.tensor2d([[1, IMG, IMG, 4]], undefined, 'int32');
    assertGradients((f) => model.forward({ inputIds: ids, media: { features: f! } }).logits, [randn([1, 2, 6])], { label: 'forward wrt features' });
  });

  it('no tensor leak in forward and project', () => {
    const model = lm();
    model.addMixin('feats', new FeatureSource());
    const mixin = model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'cogvlm_glu', inputSize: 12 }, imageTokenId: IMG }));
    const f = randn([1, 2, 12]);
    assertNoLeak(() => model.forward({ inputIds: [[IMG, 1, IMG]], media: { features: f } }), { label: 'forward' });
    assertNoLeak(() => mixin.projector.project(f), { label: 'project' });
  });
});

describe('projectors: errors', () => {
  it('placeholder count mismatch names the row and both counts', () => {
    const model = lm();
    model.addMixin('feats', new FeatureSource());
    model.addMixin('proj', new ProjectorMixin({ projector: { kind: 'linear', inputSize: 12 }, imageTokenId: IMG }));
    expect(() => model.forward({ inputIds: [[IMG, IMG, 1], [IMG, 1, 2]], media: { features: randn([2, 2, 12]) } }))
      .toThrow(/proj: row 1 of inputIds has 1 image placeholder token\(s\) \(id 31\) but 2 image tokens were projected/);
    expect(() => model.forward({ inputIds: [[IMG, 1]] })).toThrow(/contain 1 image placeholder token\(s\).*'vision.features'.* is not set/);
    expect(() => model.forward({ inputIds: [[IMG, 1]], media: { features: randn([1, 1, 5]) } })).toThrow(/features: expected shape \[B, N, 12\] \(projector.inputSize\), got \[1, 1, 5\]/);
  });

  it('bad configs', () => {
    expect(() => new ProjectorMixin({ projector: { kind: 'conv' as never, inputSize: 4 }, imageTokenId: 1 })).toThrow(/projector.kind: expected/);
    expect(() => new ProjectorMixin({ projector: { kind: 'linear', inputSize: 0 }, imageTokenId: 1 })).toThrow(/projector.inputSize: expected a positive integer, got 0/);
    expect(() => new ProjectorMixin({ projector: { kind: 'linear', inputSize: 4 }, imageTokenId: -1 })).toThrow(/imageTokenId/);
    expect(() => lm().addMixin('p', new ProjectorMixin({ projector: { kind: 'linear', inputSize: 4 }, imageTokenId: 99 }))).toThrow(/imageTokenId: expected an id < vocabSize 32, got 99/);
    expect(() => lm().addMixin('p', new ProjectorMixin({ projector: { kind: 'linear', inputSize: 4, outputSize: 5 }, imageTokenId: 1 }))).toThrow(/projector.outputSize: expected the model's hiddenSize 16, got 5/);
    const model = lm();
    const m = model.addMixin('p', new ProjectorMixin({ projector: { kind: 'minigpt_v2', inputSize: 4 }, imageTokenId: 1 }));
    expect(() => m.projector.project(tf.zeros([1, 6, 4]))).toThrow(/multiple of 4, got 6/);
  });
});
