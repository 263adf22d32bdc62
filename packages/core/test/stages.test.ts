/** The stage hooks (host: tokenTypes, positionIds, hostInputs; media: encodeMedia), the typed read-only context and sub-modules. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  createLlama, KVCache, Mixin, Model, StateMap, stateKey,
  type AttentionMask, type HookImpls, type HookName, type HostContext,
} from '../src/index.js';
import { countHostReads } from '../src/testkit/index.js';

const tiny = () => new Model({ vocabSize: 11, hiddenSize: 8, numLayers: 2, numHeads: 2, maxSeqLen: 16, seed: 1 });
const ids = [[1, 2, 3, 4]];

/** Serves positionIds with a fixed offset (a stand-in position rule). */
class Offset extends Mixin {
  constructor(private readonly k: number, private readonly over = false) { super(); }
  hooks(): HookImpls {
    return { positionIds: (host, next) => tf.add(next(host), tf.scalar(this.k, 'int32')) };
  }
  override overrides(): HookName[] {
    return this.over ? ['positionIds'] : [];
  }
}

describe('stage hooks', () => {
  it('run once per pass in order: tokenTypes -> positionIds -> hostInputs -> encodeMedia -> wordEmbedding', () => {
    const m = tiny();
    const log: string[] = [];
    class Tracer extends Mixin {
      hooks(): HookImpls {
        return {
          tokenTypes: (host, next) => (log.push('tokenTypes'), next(host)),
          positionIds: (host, next) => (log.push('positionIds'), host.tokenTypes, next(host)),
          hostInputs: (inputs, host, next) => (log.push('hostInputs'), next(inputs, host)),
          encodeMedia: (f, ctx, next) => (log.push('encodeMedia'), next(f, ctx)),
          wordEmbedding: (x, ctx, next) => (log.push('wordEmbedding'), next(x, ctx)),
          layerForward: (h, ctx, next) => (log.push(`layer${ctx.layer}`), next(h, ctx)),
        };
      }
    }
    m.addMixin('t', new Tracer());
    m.forward({ inputIds: ids }).logits.dispose();
    expect(log).toEqual(['tokenTypes', 'positionIds', 'hostInputs', 'encodeMedia', 'wordEmbedding', 'layer0', 'layer1']);
    const g = m.hookOrigins().global;
    for (const h of ['tokenTypes', 'positionIds', 'hostInputs', 'encodeMedia'] as const) expect(g[h]).toEqual(['t', 'base']);
    m.dispose();
  });

  it('positionIds is plain: two claimants fail at addMixin naming both; overrides() wraps; RoPE claims it', () => {
    const m = tiny();
    m.addMixin('a', new Offset(1));
    expect(() => m.addMixin('b', new Offset(2))).toThrow(/hook 'positionIds' is already served by mixin 'a'; mixin 'b' cannot also serve it/);
    m.addMixin('c', new Offset(10, true));
    expect(m.hookOrigins().global.positionIds).toEqual(['c', 'a', 'base']);
    const p = m.prepareInputs({ inputIds: ids });
    expect(Array.from(p.positionIds.dataSync())).toEqual([11, 12, 13, 14]); // wraps: base 0..3, +1, +10
    p.dispose();
    const llama = createLlama({ vocabSize: 11, hiddenSize: 8, numLayers: 1, numHeads: 2 });
    expect(llama.hookOrigins().global.positionIds).toEqual(['rope', 'base']);
    expect(() => llama.addMixin('x', new Offset(1))).toThrow(/already served by mixin 'rope'; mixin 'x'/);
    [m, llama].forEach((x) => x.dispose());
  });

  it('positions continue from the cache; given positions are used as they are', () => {
    const m = tiny();
    const cache = new KVCache(2);
    m.forward({ inputIds: [[1, 2, 3]], cache }).logits.dispose();
    const p = m.prepareInputs({ inputIds: [[4, 5]], cache });
    expect(Array.from(p.positionIds.dataSync())).toEqual([3, 4]);
    expect(p.pastLength).toBe(3);
    const given = tf.tensor2d([[7, 9]], undefined, 'int32');
    expect(m.prepareInputs({ inputIds: [[4, 5]], positionIds: given }).positionIds).toBe(given);
    expect(() => m.forward({ inputIds: [[1, 2]], prepared: p })).toThrow(/prepared: made for batch 1, seq 2, pastLength 3; this pass has batch 1, seq 2, pastLength 0/);
    tf.dispose([given, ...p.tensors()]);
    cache.dispose();
    m.dispose();
  });

  it('tokenTypes is a chain: the caller\'s types, else a mixin\'s; the resolved types reach ctx.tokenTypes', () => {
    const m = tiny();
    let seen: number[] | null = null;
    class MarkThree extends Mixin {
      hooks(): HookImpls {
        return {
          tokenTypes: (host: HostContext, next) => next(host) ?? Int32Array.from(host.inputIds, (x) => (x === 3 ? 1 : 0)),
          mlpForward: (h, ctx, next) => {
            if (ctx.layer === 0) seen = Array.from(ctx.tokenTypes!.dataSync());
            return next(h, ctx);
          },
        };
      }
    }
    m.addMixin('mark', new MarkThree());
    m.forward({ inputIds: ids }).logits.dispose();
    expect(seen).toEqual([0, 0, 1, 0]);
    m.forward({ inputIds: ids, tokenTypes: [[1, 1, 0, 0]] }).logits.dispose();
    expect(seen).toEqual([1, 1, 0, 0]);
    m.dispose();
  });

  it('the host stage reads nothing back from array ids, and reads a tensor once when a hook needs its values', () => {
    const m = createLlama({ vocabSize: 11, hiddenSize: 8, numLayers: 1, numHeads: 2 });
    const t = tf.tensor2d(ids, undefined, 'int32');
    // no hook needs the values: a tensor is not read (and not range-checked: only host ids are)
    expect(countHostReads(() => m.forward({ inputIds: t }).logits.dispose()).reads).toBe(0);
    class NeedsIds extends Mixin {
      hooks(): HookImpls {
        return { hostInputs: (inputs, host, next) => next(inputs, host).with(stateKey<number>('n.first'), host.inputIds[0]!, this.name) };
      }
    }
    m.addMixin('n', new NeedsIds());
    expect(countHostReads(() => m.prepareInputs({ inputIds: [[1, 2, 3, 4]] }).reads).result).toBe(0);
    const legacy = countHostReads(() => m.prepareInputs({ inputIds: t }));
    expect([legacy.reads, legacy.result.reads]).toEqual([1, 1]);
    expect(legacy.result.state.get(stateKey<number>('n.first'))).toBe(1);
    // a prepared pass reads nothing
    const prepared = m.prepareInputs({ inputIds: ids });
    expect(countHostReads(() => m.forward({ inputIds: t, prepared }).logits.dispose()).reads).toBe(0);
    expect(() => m.forward({ inputIds: [[11, 0, 0, 0]] })).toThrow(/token ids must be in \[0, 11\), got values in \[0, 11\]/);
    tf.dispose([t, ...prepared.tensors(), ...legacy.result.tensors()]);
    m.dispose();
  });

  it('state keys are typed and written once: a second writer is an error naming both', () => {
    const FEATS = stateKey<tf.Tensor2D>('test.features');
    class Writer extends Mixin {
      hooks(): HookImpls {
        return { encodeMedia: (f, ctx, next) => next(f, ctx).with(FEATS, tf.ones([1, 2]) as tf.Tensor2D, this.name) };
      }
    }
    const m = tiny();
    let got: number[] = [];
    class Reader extends Mixin {
      hooks(): HookImpls {
        return { finalForward: (h, ctx, next) => ((got = Array.from(ctx.state.require(FEATS, 'reader').dataSync())), next(h, ctx)) };
      }
    }
    m.addMixin('w1', new Writer());
    m.addMixin('r', new Reader());
    m.forward({ inputIds: ids }).logits.dispose();
    expect(got).toEqual([1, 1]);
    m.addMixin('w2', new Writer());
    expect(() => m.forward({ inputIds: ids })).toThrow(/state 'test.features': already written by 'w1'; 'w2' cannot write it again/);
    expect(() => StateMap.empty.require(FEATS, 'who')).toThrow(/who: needs state 'test.features', which no stage wrote/);
    m.dispose();
  });

  it('the context is read-only: positions, token types, mask and state cannot be reassigned by a mixin', () => {
    const m = tiny();
    const tries: Record<string, string> = {};
    class Vandal extends Mixin {
      hooks(): HookImpls {
        return {
          wordEmbedding: (x, ctx, next) => {
            for (const k of ['positionIds', 'tokenTypes', 'attention', 'state', 'layer'] as const) {
              try {
                (ctx as unknown as Record<string, unknown>)[k] = null;
                tries[k] = 'assigned';
              } catch (e) {
                tries[k] = (e as Error).name;
              }
            }
            expect(Object.isFrozen(ctx.attention) && Object.isFrozen(ctx.media)).toBe(true);
            return next(x, ctx);
          },
        };
      }
    }
    m.addMixin('v', new Vandal());
    m.forward({ inputIds: ids }).logits.dispose();
    expect(tries).toEqual({ positionIds: 'TypeError', tokenTypes: 'TypeError', attention: 'TypeError', state: 'TypeError', layer: 'TypeError' });
    m.dispose();
  });

  it('attentionFn receives the mask as an argument (SAT attention_fn(q, k, v, mask))', () => {
    const m = tiny();
    const masks: AttentionMask[] = [];
    class Spy extends Mixin {
      hooks(): HookImpls {
        return { attentionFn: (q, k, v, mask, ctx, next) => (masks.push(mask), next(q, k, v, mask, ctx)) };
      }
    }
    m.addMixin('spy', new Spy());
    m.forward({ inputIds: [[1, 2, 3]], attentionMask: [[1, 1, 0]] }).logits.dispose();
    expect(masks).toHaveLength(2);
    expect(masks[0]!.causal).toBe(true);
    expect(masks[0]!.bias!.shape).toEqual([1, 1, 1, 3]);
    m.dispose();
  });

  it('sub-modules: built on attach, a clear error before, dropped on removal', () => {
    class WithPart extends Mixin {
      readonly part = this.submodule('scale table', (model) => {
        model.params.create(`${this.name}.scale`, [2], { kind: 'constant', value: 3 }, { component: this.name });
        return { size: model.config.hiddenSize };
      });
      hooks(): HookImpls {
        return {};
      }
    }
    const mx = new WithPart();
    expect(() => mx.part.get()).toThrow(/WithPart: not attached to a model yet; its scale table is built by model.addMixin\(name, mixin\)/);
    expect(() => mx.model).toThrow(/not attached/);
    const m = tiny();
    m.addMixin('w', mx);
    expect(mx.part.get().size).toBe(8);
    expect(mx.model).toBe(m);
    expect(m.params.counts().byComponent.w).toBe(2);
    m.removeMixin('w');
    expect(() => mx.part.get()).toThrow(/WithPart 'w': not attached/);
    expect(mx.attached).toBe(false);
    m.dispose();
  });
});
