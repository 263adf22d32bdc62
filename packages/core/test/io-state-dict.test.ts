import { describe, expect, it } from 'vitest';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadStateDict, readSafetensors, readSafetensorsFile, saveStateDict, writeSafetensors } from '../src/io/index.js';
import { loadFixtureSync } from '../src/testkit/index.js';

const FIX = join(import.meta.dirname, 'fixtures');

function vars(spec: Record<string, number[]>): Map<string, tf.Variable> {
  const m = new Map<string, tf.Variable>();
  for (const [k, shape] of Object.entries(spec)) m.set(k, tf.variable(tf.zeros(shape), true, `sd_${k}_${Math.random()}`));
  return m;
}

function disposeAll(m: Map<string, tf.Variable>) {
  for (const v of m.values()) v.dispose();
}

describe('loadStateDict', () => {
  const file = readSafetensors(
    writeSafetensors({
      'a.weight': { dtype: 'F32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
      'a.bias': { dtype: 'F16', shape: [3], data: [0.5, -1, 2] },
      'b.weight': { dtype: 'F32', shape: [2], data: [7, 8] },
      extra: { dtype: 'F32', shape: [1], data: [9] },
      ids: { dtype: 'I64', shape: [2], data: new BigInt64Array([3n, 4n]) },
    }),
  );

  it('loads matching tensors and reports missing / unexpected / mismatched in non-strict mode', () => {
    const p = vars({ 'a.weight': [2, 3], 'a.bias': [3], 'b.weight': [3], 'c.weight': [4] });
    const r = loadStateDict(p, file, { strict: false });
    expect(r.loaded).toEqual(['a.bias', 'a.weight']);
    expect(r.missing).toEqual(['c.weight']);
    expect(r.unexpected).toEqual(['extra', 'ids']);
    expect(r.mismatched).toEqual([{ name: 'b.weight', fileName: 'b.weight', expected: [3], actual: [2] }]);
    expect(Array.from(p.get('a.weight')!.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(p.get('a.bias')!.dataSync())).toEqual([0.5, -1, 2]);
    expect(Array.from(p.get('b.weight')!.dataSync())).toEqual([0, 0, 0]); // mismatched: untouched
    disposeAll(p);
  });

  it('strict mode throws one error listing every problem with shapes, and assigns nothing', () => {
    const p = vars({ 'a.weight': [2, 3], 'a.bias': [3], 'b.weight': [3], 'c.weight': [4, 5] });
    let msg = '';
    try {
      loadStateDict(p, file);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/nothing was assigned/);
    expect(msg).toMatch(/missing \(1\)[\s\S]*c\.weight \[4, 5\]/);
    expect(msg).toMatch(/unexpected \(2\)[\s\S]*extra \[1\][\s\S]*ids \[2\]/);
    expect(msg).toMatch(/mismatched \(1\)[\s\S]*b\.weight: expected \[3\], file has \[2\]/);
    // validated before assigning: a.weight still zero
    expect(Array.from(p.get('a.weight')!.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
    disposeAll(p);
  });

  it('nameMap (null skips), transpose, Record params, int variables', () => {
    const p: Record<string, tf.Variable> = {
      'A.w': tf.variable(tf.zeros([3, 2])),
      'A.b': tf.variable(tf.zeros([3])),
      'B.w': tf.variable(tf.zeros([2])),
      tok: tf.variable(tf.zeros([2], 'int32')),
    };
    const r = loadStateDict(p, file, {
      nameMap: (n) => (n === 'extra' ? null : n === 'ids' ? 'tok' : n.replace('a.weight', 'A.w').replace('a.bias', 'A.b').replace('b.weight', 'B.w')),
      transpose: (name) => name === 'A.w',
    });
    expect(r.skipped).toEqual(['extra']);
    expect(r.loaded).toEqual(['A.b', 'A.w', 'B.w', 'tok']);
    expect(p['A.w']!.arraySync()).toEqual([[1, 4], [2, 5], [3, 6]]);
    expect(Array.from(p.tok!.dataSync())).toEqual([3, 4]);
    // a float file tensor cannot go into an int variable
    const q = { 'a.weight': tf.variable(tf.zeros([2, 3], 'int32')) };
    expect(() => loadStateDict(q, file, { nameMap: (n) => (n === 'a.weight' ? n : null) })).toThrow(/a\.weight: dtype F32 cannot be loaded into a int32 variable/);
    tf.dispose([...Object.values(p), ...Object.values(q)]);
  });

  it('two file tensors mapping to one parameter is an error', () => {
    const p = vars({ x: [3] });
    expect(() => loadStateDict(p, file, { strict: false, nameMap: (n) => (n.endsWith('bias') || n === 'extra' ? 'x' : null) })).toThrow(/both map to parameter "x"/);
    disposeAll(p);
  });

  it('does not leak tensors', () => {
    const p = vars({ 'a.weight': [2, 3], 'a.bias': [3], 'b.weight': [2] });
    loadStateDict(p, file, { strict: false }); // warm-up
    const before = tf.memory().numTensors;
    loadStateDict(p, file, { strict: false, transpose: () => false });
    expect(tf.memory().numTensors).toBe(before);
    expect(() => loadStateDict(p, file)).toThrow();
    expect(tf.memory().numTensors).toBe(before);
    disposeAll(p);
  });

  it('saveStateDict -> loadStateDict round trip (atomic, metadata)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vlmix-sd-'));
    const src = new Map([
      ['w', tf.variable(tf.tensor([[1, 2], [3, 4]]))],
      ['n', tf.variable(tf.tensor([5, 6], [2], 'int32'))],
    ]);
    await saveStateDict(join(dir, 'ckpt.safetensors'), src, { step: '3' });
    expect(await readdir(dir)).toEqual(['ckpt.safetensors']);
    const f = await readSafetensorsFile(join(dir, 'ckpt.safetensors'));
    expect(f.metadata).toEqual({ step: '3' });
    const dst = new Map([
      ['w', tf.variable(tf.zeros([2, 2]))],
      ['n', tf.variable(tf.zeros([2], 'int32'))],
    ]);
    expect(loadStateDict(dst, f).loaded).toEqual(['n', 'w']);
    expect(dst.get('w')!.arraySync()).toEqual([[1, 2], [3, 4]]);
    expect(Array.from(dst.get('n')!.dataSync())).toEqual([5, 6]);
    tf.dispose([...src.values(), ...dst.values()]);
  });

  it('loads a reference fixture (llama2.c weights) with strict=true', () => {
    const fx = loadFixtureSync(join(FIX, 'llama2c_forward'));
    const w = fx.weights!;
    const p = new Map(w.names().map((n) => [n, tf.variable(tf.zeros(w.get(n).shape))] as const));
    const before = tf.memory().numTensors;
    const r = loadStateDict(p, w);
    expect(tf.memory().numTensors).toBe(before);
    expect(r.loaded.length).toBe(21);
    expect(Array.from(p.get('norm.weight')!.dataSync())).toEqual(Array.from(w.toFloat32('norm.weight')));
    disposeAll(p);
  });
});

describe('loadStateDict: bool variables and unused inputs', () => {
  it('loads BOOL into a bool variable', () => {
    const f = readSafetensors(writeSafetensors({ m: { dtype: 'BOOL', shape: [3], data: [1, 0, 1] } }));
    const p = { m: tf.variable(tf.zeros([3], 'bool')) };
    loadStateDict(p, f);
    expect(p.m.dtype).toBe('bool');
    expect(Array.from(p.m.dataSync())).toEqual([1, 0, 1]);
    p.m.dispose();
  });
});
