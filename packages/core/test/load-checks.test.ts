import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createModel, readSafetensors, writeSafetensors, type Model } from '../src/index.js';

/** A full state dict of fresh tensors copied from `m` (caller disposes). */
function copyOf(m: Model): Map<string, tf.Tensor> {
  return new Map([...m.stateDict()].map(([n, v]) => [n, v.clone()]));
}

const values = (m: Model) => m.params.list().map((p) => Array.from(p.variable.dataSync()));

describe('Model.loadStateDict checks', () => {
  it('loads a matching state dict exactly and leaks nothing', () => {
    const src = createModel('gpt2-tiny', { seed: 1 });
    const dst = createModel('gpt2-tiny', { seed: 2 });
    const sd = copyOf(src);
    const before = tf.memory().numTensors;
    const r = dst.loadStateDict(sd);
    expect(tf.memory().numTensors).toBe(before);
    expect(r.loaded).toHaveLength(src.params.names().length);
    expect(values(dst)).toEqual(values(src));
    tf.dispose([...sd.values()]);
    src.dispose();
    dst.dispose();
  });

  it('refuses a tensor whose dtype differs from the parameter (an F32 tensor relabelled I32), assigning nothing', () => {
    const m = createModel('gpt2-tiny', { seed: 1 });
    const name = 'transformer.final_layernorm.weight';
    // Relabel one F32 tensor as I32 in the file header: same byte size, so the file itself parses.
    const bytes = writeSafetensors({ [name]: m.param(name) }, { dtypes: 'F32' });
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n)).replace('"F32"', '"I32"');
    const relabelled = new Uint8Array(bytes);
    relabelled.set(new TextEncoder().encode(header), 8);
    const t = readSafetensors(relabelled).toTensor(name);
    expect(t.dtype).toBe('int32');
    const sd = copyOf(m);
    sd.get(name)!.dispose();
    sd.set(name, t);
    const before = values(m);
    const tensorsBefore = tf.memory().numTensors;
    expect(() => m.loadStateDict(sd)).toThrow(`loadStateDict: wrong dtype: ${name}: expected float32, got int32`);
    expect(tf.memory().numTensors).toBe(tensorsBefore); // no leaked cast
    expect(values(m)).toEqual(before);
    tf.dispose([...sd.values()]);
    m.dispose();
  });

  it('refuses NaN / Infinity values unless allowNonFinite, naming the parameters and counts', () => {
    const m = createModel('llama-tiny', { seed: 1 });
    const sd = copyOf(m);
    const a = 'transformer.layers.1.mlp.dense_4h_to_h.weight';
    const b = 'transformer.final_layernorm.weight';
    for (const [name, bad] of [[a, [NaN, Infinity]], [b, [-Infinity]]] as const) {
      const t = sd.get(name)!;
      const data = t.dataSync().slice();
      bad.forEach((x, i) => (data[i * 7] = x));
      sd.set(name, tf.tensor(data, t.shape));
      t.dispose();
    }
    const before = values(m);
    const tensorsBefore = tf.memory().numTensors;
    expect(() => m.loadStateDict(sd)).toThrow(new RegExp(`non-finite values \\(NaN or Infinity\\) in ${a.replace(/\./g, '\\.')} \\(2 of 11264\\), ${b.replace(/\./g, '\\.')} \\(1 of 64\\); .*allowNonFinite: true`));
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(values(m)).toEqual(before);
    m.loadStateDict(sd, { allowNonFinite: true });
    expect(Number.isNaN(m.param(a).dataSync()[0])).toBe(true);
    tf.dispose([...sd.values()]);
    m.dispose();
  });

  it('rejects a disposed tensor with a clear error instead of failing on first use', () => {
    const m = createModel('gpt2-tiny', { seed: 1 });
    const sd = copyOf(m);
    const name = 'lm_head.weight';
    const has = sd.has(name) ? name : [...sd.keys()][0]!;
    sd.get(has)!.dispose();
    const before = values(m);
    expect(() => m.loadStateDict(sd)).toThrow(`loadStateDict: disposed tensors (dispose them after loading, not before): ${has}`);
    expect(values(m)).toEqual(before);
    // The model is still usable.
    const { logits } = m.forward({ inputIds: [[1, 2, 3]] });
    expect(logits.shape).toEqual([1, 3, 512]);
    logits.dispose();
    tf.dispose([...sd.values()].filter((t) => !t.isDisposed));
    m.dispose();
  });
});
