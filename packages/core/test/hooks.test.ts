import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Mixin, Model, type HookImpls, type HookName } from '../src/index.js';

const tiny = () => new Model({ vocabSize: 11, hiddenSize: 8, numLayers: 2, numHeads: 2, maxSeqLen: 8, seed: 1 });
const ids = [[1, 2, 3]];

/** Records its name into a log whenever its hook runs, then defers to next. */
class Tracer extends Mixin {
  constructor(private readonly hook: HookName, private readonly log: string[], private readonly only?: number) { super(); }
  hooks(): HookImpls {
    return { [this.hook]: (...args: unknown[]) => {
      this.log.push(this.name);
      const next = args[args.length - 1] as (...a: unknown[]) => unknown;
      return next(...args.slice(0, -1));
    } } as HookImpls;
  }
  override appliesTo(_h: HookName, layer: number): boolean {
    return this.only == null || layer === this.only;
  }
}

/** Scales the MLP output; a plain hook. */
class ScaleMlp extends Mixin {
  constructor(private readonly k: number) { super(); }
  hooks(): HookImpls {
    return { mlpForward: (h, ctx, next) => tf.mul(next(h, ctx), this.k) };
  }
}

describe('hook engine', () => {
  it('chains chainable hooks, last added outermost, and reports the chain', () => {
    const m = tiny();
    const log: string[] = [];
    m.addMixin('a', new Tracer('linear', log));
    m.addMixin('b', new Tracer('linear', log));
    m.forward({ inputIds: ids }).logits.dispose();
    // 4 linears per layer x 2 layers, each call runs b then a
    expect(log.slice(0, 2)).toEqual(['b', 'a']);
    expect(log.length).toBe(16);
    expect(m.hookOrigins().layers[0]!.hooks.linear).toEqual(['b', 'a', 'base']);
    expect(m.hookOrigins().global.wordEmbedding).toEqual(['base']);
  });

  it('per-layer hooks appear only where they apply', () => {
    const m = tiny();
    const log: string[] = [];
    m.addMixin('only1', new Tracer('layerForward', log, 1));
    m.forward({ inputIds: ids }).logits.dispose();
    expect(log).toEqual(['only1']);
    const o = m.hookOrigins();
    expect(o.layers[0]!.hooks.layerForward).toEqual(['base']);
    expect(o.layers[1]!.hooks.layerForward).toEqual(['only1', 'base']);
  });

  it('two mixins on one plain hook is an error naming both; overrides() allows wrapping', () => {
    const m = tiny();
    m.addMixin('first', new ScaleMlp(2));
    expect(() => m.addMixin('second', new ScaleMlp(3))).toThrow(/hook 'mlpForward' is already served by mixin 'first'; mixin 'second' cannot also serve it/);
    expect(m.hasMixin('second')).toBe(false);
    class Over extends ScaleMlp { override overrides(): HookName[] { return ['mlpForward']; } }
    m.addMixin('third', new Over(3));
    expect(m.hookOrigins().layers[0]!.hooks.mlpForward).toEqual(['third', 'first', 'base']);
  });

  it('a replacing mixin changes the output; removal restores the default exactly', () => {
    const m = tiny();
    const base = m.forward({ inputIds: ids }).logits;
    m.addMixin('scale', new ScaleMlp(0));
    const changed = m.forward({ inputIds: ids }).logits;
    expect(tf.max(tf.abs(tf.sub(base, changed))).dataSync()[0]).toBeGreaterThan(1e-4);
    m.removeMixin('scale');
    const restored = m.forward({ inputIds: ids }).logits;
    expect(Array.from(restored.dataSync())).toEqual(Array.from(base.dataSync()));
    expect(m.hookOrigins().layers[0]!.hooks.mlpForward).toEqual(['base']);
  });

  it('errors: unknown hook, duplicate name, unknown mixin', () => {
    const m = tiny();
    class Bad extends Mixin { hooks(): HookImpls { return { notAHook: () => null } as unknown as HookImpls; } }
    expect(() => m.addMixin('bad', new Bad())).toThrow(/mixin 'bad': unknown hook 'notAHook'; hooks are wordEmbedding/);
    m.addMixin('s', new ScaleMlp(1));
    expect(() => m.addMixin('s', new ScaleMlp(1))).toThrow(/a mixin named 's' already exists/);
    expect(() => m.removeMixin('nope')).toThrow(/no mixin named 'nope'; mixins are: s/);
    expect(() => m.getMixin('nope')).toThrow(/no mixin named 'nope'/);
  });

  it('mixin parameters are created under its component and removed with it', () => {
    const m = tiny();
    class WithParam extends Mixin {
      hooks(): HookImpls { return {}; }
      override attach(model: Model) { model.params.create('extra.weight', [3, 2], { kind: 'constant', value: 1 }, { component: this.name }); }
    }
    const before = m.params.counts().total;
    m.addMixin('extra', new WithParam());
    expect(m.params.counts().byComponent.extra).toBe(6);
    expect(m.params.counts().total).toBe(before + 6);
    m.removeMixin('extra');
    expect(m.params.has('extra.weight')).toBe(false);
    expect(m.params.counts().total).toBe(before);
  });
});
