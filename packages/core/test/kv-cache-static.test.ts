// The static KV cache (KVCache { capacity }, HF's StaticCache): preallocated keys/values written per pass
// (ops.cacheWrite, in place on vlmix-cpu), attention over every slot with the unwritten ones masked, and
// generate's replayed decoding steps over it (capture.ts), checked against the dynamic cache and no cache.
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { KVCache, Mixin, StateMap, StepReplayer, buildMask, createModel, decodeReplayStatus, generate, hostValuesKey, ops, stateKey } from '../src/index.js';
import type { HookImpls, Model } from '../src/index.js';

const models: Model[] = [];
const model = (name: string, seed = 5) => {
  const m = createModel(name, { seed });
  models.push(m);
  return m;
};
afterAll(() => models.forEach((m) => m.dispose()));

/** Per-pass logits of feeding `chunks` in turn through one cache. */
function chunked(m: Model, chunks: number[][][], cache: KVCache): Float32Array[] {
  const out = chunks.map((ids) => {
    const { logits } = m.forward({ inputIds: ids, cache });
    const v = logits.dataSync() as Float32Array;
    logits.dispose();
    return v;
  });
  cache.dispose();
  return out;
}

const maxDiff = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((x, i) => Math.max(...x.map((v, j) => Math.abs(v - b[i]![j]!)))));

describe('ops.cacheWrite', () => {
  it('writes positions [p, p + T) of axis 2 and nothing else (hand-built values)', () => {
    const cache = tf.tensor4d(Array.from({ length: 2 * 2 * 5 * 3 }, (_, i) => i), [2, 2, 5, 3]);
    const update = tf.tensor4d(Array.from({ length: 2 * 2 * 2 * 3 }, (_, i) => -1 - i), [2, 2, 2, 3]);
    const want = (cache.arraySync() as number[][][][]).map((b, bi) => b.map((h, hi) => h.map((row, s) =>
      s >= 1 && s < 3 ? (update.arraySync() as number[][][][])[bi]![hi]![s - 1]! : row)));
    const pos = tf.scalar(1, 'int32');
    const out = ops.cacheWrite(cache, update, pos);
    expect(out.arraySync()).toEqual(want);
    const inPlace = out.dataId === cache.dataId;
    expect(inPlace).toBe(ops.cacheWritesInPlace());
    tf.dispose([out, cache, update, pos]);
  });

  it('never changes a buffer another tensor shares (a clone keeps its values)', () => {
    const cache = tf.zeros([1, 1, 4, 2]);
    const copy = cache.clone(); // shares the buffer
    const pos = tf.scalar(2, 'int32');
    const out = ops.cacheWrite(cache, tf.ones([1, 1, 1, 2]), pos);
    expect(Array.from(copy.dataSync())).toEqual(new Array(8).fill(0));
    expect(Array.from(out.dataSync())).toEqual([0, 0, 0, 0, 1, 1, 0, 0]);
    tf.dispose([cache, copy, pos, out]);
  });

  it('names the argument and the expected vs actual value on bad input', () => {
    const cache = tf.zeros([1, 2, 4, 3]);
    const pos = tf.scalar(0, 'int32');
    expect(() => ops.cacheWrite(cache, tf.zeros([1, 3, 1, 3]), pos)).toThrow('update: expected shape [1, 2, *, 3], got [1, 3, 1, 3]');
    expect(() => ops.cacheWrite(cache, tf.zeros([1, 2, 5, 3]), pos)).toThrow(/update: 5 positions do not fit a cache of 4/);
    expect(() => ops.cacheWrite(cache, tf.zeros([1, 2, 1, 3]), tf.scalar(0))).toThrow(/position: expected dtype int32, got float32/);
    expect(() => ops.cacheWrite(cache, tf.zeros([1, 2, 1, 3]), tf.tensor1d([0], 'int32'))).toThrow(/position: expected rank 0/);
    const late = tf.scalar(3, 'int32');
    // checked where the position is read: vlmix-cpu's kernel, or tfjs's TensorScatterUpdate under the composite body
    expect(() => ops.cacheWrite(cache, tf.zeros([1, 2, 2, 3]), late)).toThrow(ops.cacheWritesInPlace() ? /the 2 new positions at the given position do not fit the cache's 4 .*3 \+ 2 > 4/ : /Invalid indices/);
    tf.dispose([cache, pos, late]);
  });
});

describe('static KV cache', () => {
  it('chunked passes give the dynamic cache\'s logits (gpt2-tiny, llama-tiny with GQA); no leak', () => {
    for (const name of ['gpt2-tiny', 'llama-tiny']) {
      const m = model(name);
      const seq = Array.from({ length: 11 }, (_, i) => (i * 7 + 1) % m.config.vocabSize);
      const chunks = [[seq.slice(0, 5), seq.slice(1, 6)], [seq.slice(5, 6), seq.slice(6, 7)], [seq.slice(6, 9), seq.slice(7, 10)], [seq.slice(9, 10), seq.slice(10, 11)]];
      const before = tf.memory().numTensors;
      const dyn = chunked(m, chunks, new KVCache(m.config.numLayers));
      const cache = new KVCache(m.config.numLayers, { capacity: 16 });
      expect(cache.isStatic).toBe(true);
      const stat = chunks.map((ids, i) => {
        const { logits } = m.forward({ inputIds: ids, cache });
        const v = logits.dataSync() as Float32Array;
        logits.dispose();
        if (i === 0) {
          const [k] = cache.tensors();
          expect(k!.shape).toEqual([2, m.config.numKvHeads, 16, m.config.headDim]); // preallocated
        }
        return v;
      });
      expect(cache.length).toBe(10);
      cache.dispose();
      expect(maxDiff(dyn, stat)).toBeLessThan(1e-5);
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('grows: the written positions kept, the logits those of the dynamic cache', () => {
    const m = model('llama-tiny');
    const seq = Array.from({ length: 12 }, (_, i) => (i * 5 + 2) % m.config.vocabSize);
    const chunks = [[seq.slice(0, 6)], [seq.slice(6, 7)], [seq.slice(7, 12)]];
    const dyn = chunked(m, chunks, new KVCache(m.config.numLayers));
    const cache = new KVCache(m.config.numLayers, { capacity: 7 });
    const stat = chunks.map((ids, i) => {
      if (i === 2) cache.grow(16);
      const { logits } = m.forward({ inputIds: ids, cache });
      const v = logits.dataSync() as Float32Array;
      logits.dispose();
      return v;
    });
    expect(cache.capacity).toBe(16);
    expect(cache.tensors()[0]!.shape[2]).toBe(16);
    expect(() => cache.grow(10)).toThrow(/KVCache.grow: expected an integer >= the capacity 16, got 10/);
    cache.dispose();
    expect(maxDiff(dyn, stat)).toBeLessThan(1e-5);
    expect(() => new KVCache(2).grow(8)).toThrow(/only a static cache/);
  });

  it('fails clearly past its capacity and on bad options', () => {
    const m = model('gpt2-tiny');
    const cache = new KVCache(m.config.numLayers, { capacity: 4 });
    tf.dispose(m.forward({ inputIds: [[1, 2, 3]], cache }).logits);
    expect(() => m.forward({ inputIds: [[4, 5]], cache })).toThrow(/2 positions after 3 cached exceed the KV cache's capacity 4/);
    expect(() => cache.advance(2)).toThrow(/KVCache.advance: expected an integer in \[0, 1\], got 2/);
    cache.dispose();
    expect(() => new KVCache(2, { capacity: 0 })).toThrow(/capacity must be a positive integer/);
    expect(() => new KVCache(2, { capacity: 1.5 })).toThrow(/capacity must be a positive integer/);
    expect(() => new KVCache(2).advance(1)).toThrow(/only a static cache/);
  });

  it('takes a padding mask over the past + new positions or over every slot', () => {
    const m = model('gpt2-tiny');
    const ids = [[0, 0, 5, 6], [1, 2, 3, 4]];
    const mask = [[0, 0, 1, 1], [1, 1, 1, 1]];
    const run = (cache: KVCache | null, attentionMask: number[][]) => {
      const { logits } = m.forward({ inputIds: ids, cache, attentionMask });
      const v = logits.dataSync() as Float32Array;
      logits.dispose();
      cache?.dispose();
      return v;
    };
    const plain = run(null, mask);
    const narrow = run(new KVCache(m.config.numLayers, { capacity: 8 }), mask);
    const wide = run(new KVCache(m.config.numLayers, { capacity: 8 }), mask.map((r) => [...r, 0, 0, 0, 0]));
    expect(maxDiff([plain], [narrow])).toBeLessThan(1e-5);
    expect(maxDiff([plain], [wide])).toBeLessThan(1e-5);
  });
});

describe('buildMask over a static cache', () => {
  const bias = (kind: 'causal' | 'bidirectional' | 'prefix', p: number, tq: number, tk: number, prefixLength?: number[]) => {
    const pos = tf.scalar(p, 'int32');
    const m = buildMask({ kind, prefixLength }, prefixLength?.length ?? 1, tq, tk, pos);
    pos.dispose();
    expect(m.causal).toBe(false);
    const out = m.bias!.arraySync() as number[][][][];
    m.bias!.dispose();
    return out.map((b) => b[0]!.map((row) => row.map((x) => (x === 0 ? 1 : 0))));
  };

  it('causal: the query at p + i sees slots 0..p + i; later slots (not written yet) are masked', () => {
    expect(bias('causal', 2, 2, 6)[0]).toEqual([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]]);
  });
  it('bidirectional: every query sees slots 0..p + T - 1', () => {
    expect(bias('bidirectional', 2, 2, 6)[0]).toEqual([[1, 1, 1, 1, 0, 0]]);
  });
  it('prefix-LM: causal, plus each row\'s prefix', () => {
    expect(bias('prefix', 1, 2, 5, [4, 0])).toEqual([[[1, 1, 1, 1, 0], [1, 1, 1, 1, 0]], [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]]);
  });
});

describe('generate over a static cache with replayed decoding steps', () => {
  it('gives the tokens of the dynamic cache and of no cache (greedy, sampled, left-padded batch, beam); no leak', () => {
    for (const name of ['gpt2-tiny', 'llama-tiny']) {
      const m = model(name, 9);
      const cases: [number[] | number[][], Parameters<typeof generate>[2]][] = [
        [[3, 1, 4, 1, 5], { maxNewTokens: 10, greedy: true }],
        [[[3, 1], [2, 7]], { maxNewTokens: 10, temperature: 1.3, topK: 50, topP: 0.9, seed: 11 }],
        [[[3, 1, 4, 1], [2, 7]], { maxNewTokens: 8, greedy: true }],
        [[3, 1, 4], { maxNewTokens: 6, numBeams: 3 }],
      ];
      for (const [prompt, opts] of cases) {
        const before = tf.memory().numTensors;
        const ids = tf.engine().backend.numDataIds();
        const replayed = generate(m, prompt, { ...opts, cacheImplementation: 'static' });
        const again = generate(m, prompt, { ...opts, cacheImplementation: 'static' }); // recordings kept: replayed throughout
        const eager = generate(m, prompt, { ...opts, cacheImplementation: 'static', replaySteps: false });
        const dynamic = generate(m, prompt, { ...opts, cacheImplementation: 'dynamic' });
        const none = generate(m, prompt, { ...opts, useCache: false });
        for (const r of [again, eager, dynamic, none]) expect(r.sequences, `${name} ${JSON.stringify(opts)}`).toEqual(replayed.sequences);
        expect(tf.memory().numTensors).toBe(before);
        expect(tf.engine().backend.numDataIds()).toBe(ids);
      }
      const status = decodeReplayStatus(m);
      if (!ops.cacheWritesInPlace()) { // tfjs 'cpu': the static cache's steps run eagerly
        expect(status).toEqual([]);
        continue;
      }
      expect(status.length).toBeGreaterThan(0);
      for (const s of status) expect(s.state, s.reason).toBe('replaying');
      expect(status.reduce((a, s) => a + s.replays, 0)).toBeGreaterThan(20);
    }
  });

  it('reserves prompt + 64 positions, then doubles: a long budget gives the dynamic cache\'s tokens and, ended early, holds no more', () => {
    const m = model('llama-tiny', 4);
    const opts = { greedy: true, allowPastContext: true } as const; // RoPE: past maxSeqLen 128
    const long = generate(m, [3, 1, 4], { ...opts, maxNewTokens: 200, cacheImplementation: 'static' });
    expect(long.sequences).toEqual(generate(m, [3, 1, 4], { ...opts, maxNewTokens: 200, cacheImplementation: 'dynamic' }).sequences);
    if (ops.cacheWritesInPlace()) { // recorded at 128 slots, then at 203 (the budget)
      const slots = decodeReplayStatus(m).map((s) => /float32\[1x2x(\d+)x16\]/.exec(s.signature)?.[1]).sort();
      expect(slots).toEqual(['128', '203']);
    }
    // an end token at the 5th new token: the cache never grew past its first 128 slots
    const eos = long.newTokens[0]![4]!;
    const early = generate(m, [3, 1, 4], { ...opts, maxNewTokens: 1000, eosTokenId: eos, cacheImplementation: 'static' });
    expect(early.newTokens[0]).toEqual(long.newTokens[0]!.slice(0, long.newTokens[0]!.indexOf(eos) + 1));
    if (ops.cacheWritesInPlace()) expect(decodeReplayStatus(m).every((s) => !s.signature.includes('x1003x'))).toBe(true);
  });

  it('defaults to the static cache where the backend writes it in place; validates cacheImplementation', () => {
    const m = model('gpt2-tiny');
    const fresh = createModel('gpt2-tiny', { seed: 1 });
    models.push(fresh);
    generate(fresh, [1, 2, 3], { maxNewTokens: 5, greedy: true });
    expect(decodeReplayStatus(fresh).length > 0).toBe(ops.cacheWritesInPlace());
    expect(() => generate(m, [1], { maxNewTokens: 2, cacheImplementation: 'paged' as 'static' })).toThrow(/cacheImplementation: expected 'static' or 'dynamic', got "paged"/);
  });

  it('a replayed step whose host-stage values change, or whose model gained or lost a mixin, records anew instead of replaying stale code', () => {
    // a mixin whose host stage decides a per-step constant that the device stage uploads: a bias on one logit,
    // on from the 4th position on. Replaying the recording made before would keep it off.
    const m = model('gpt2-tiny', 2);
    const key = stateKey<{ on: boolean }>('test.bias');
    class BiasMixin extends Mixin {
      hooks(): HookImpls {
        return {
          hostInputs: (inputs, host, next) => next(inputs, host).with(key, { on: host.pastLength + host.seqLen >= 4 }, this.name),
          finalForward: (h, ctx, next) => {
            const logits = next(h, ctx);
            const row = new Float32Array(logits.shape[2]!);
            if (ctx.state.require(key, this.name).on) row[7] = 1e4; // token 7 wins once on
            return tf.add(logits, tf.tensor1d(row));
          },
        };
      }
    }
    const before = generate(m, [1], { maxNewTokens: 8, greedy: true, cacheImplementation: 'static' }); // recorded without the mixin
    m.addMixin('step-bias', new BiasMixin());
    const r = generate(m, [1], { maxNewTokens: 8, greedy: true, cacheImplementation: 'static' });
    const plain = generate(m, [1], { maxNewTokens: 8, greedy: true, useCache: false });
    expect(r.sequences).toEqual(plain.sequences);
    expect(r.sequences[0]!.slice(4)).toEqual([7, 7, 7, 7, 7]);
    expect(before.sequences[0]!.slice(4)).not.toEqual([7, 7, 7, 7, 7]);
    m.removeMixin('step-bias');
    // a mixin with no host state (the same inputs and host values, other kernels: the hook table's revision):
    // the next token is the last one + 3, computed on the device
    class Plus3 extends Mixin {
      hooks(): HookImpls {
        return {
          finalForward: (h, ctx, next) => {
            const [b, t] = ctx.inputIds.shape as [number, number];
            const want = tf.add(tf.slice(ctx.inputIds, [0, t - 1], [b, 1]), tf.scalar(3, 'int32'));
            return tf.add(next(h, ctx), tf.mul(tf.oneHot(want, ctx.host.config.vocabSize), 1e4));
          },
        };
      }
    }
    const revision = m.revision;
    m.addMixin('plus3', new Plus3());
    expect(m.revision).toBe(revision + 1);
    expect(generate(m, [1], { maxNewTokens: 8, greedy: true, cacheImplementation: 'static' }).sequences[0]).toEqual([1, 4, 7, 10, 13, 16, 19, 22, 25]);
    m.removeMixin('plus3');
    expect(generate(m, [1], { maxNewTokens: 8, greedy: true, cacheImplementation: 'static' }).sequences).toEqual(before.sequences);
  });
});

describe('replay keys', () => {
  it('StateMap.hostKey: host values by value, tensors by shape and dtype', () => {
    const k1 = stateKey<unknown>('a');
    const t = tf.zeros([2, 3], 'int32');
    const a = StateMap.empty.with(k1, { cls: Int32Array.from([1, 2]), t }, 'x');
    const b = StateMap.empty.with(k1, { cls: Int32Array.from([1, 3]), t }, 'x');
    expect(a.hostKey()).toContain('[1,2]');
    expect(a.hostKey()).toContain('int32[2x3]');
    expect(a.hostKey()).not.toBe(b.hostKey());
    expect(hostValuesKey(new Map([[1, 'x']]))).toBe('[[1,"x"]]');
    t.dispose();
  });

  it('StepReplayer: a different hostKey is a different signature', () => {
    const r = new StepReplayer();
    const x = tf.ones([2]);
    for (let i = 0; i < 3; i++) for (const k of ['a', 'b']) tf.dispose(r.run([x], () => [tf.mul(x, k === 'a' ? 2 : 3)], k) as tf.Tensor[]);
    expect(r.status().map((s) => [s.signature.endsWith('| a') || s.signature.endsWith('| b'), s.state, s.replays])).toEqual([[true, 'replaying', 1], [true, 'replaying', 1]]);
    const out = r.run([x], () => [tf.mul(x, 3)], 'b')[0]!;
    expect(Array.from(out.dataSync())).toEqual([3, 3]);
    tf.dispose([out, x]);
    expect(() => r.run([], () => [], 3 as unknown as string)).toThrow(/hostKey must be a string, got number/);
  });
});

