import { describe, expect, it, afterAll } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  openSafetensorsFile, openSafetensorsFolder, openSafetensorsIndex, readSafetensors, readSafetensorsFileSync, writeSafetensors,
} from '../src/io/index.js';

const REF = join(import.meta.dirname, 'fixtures', 'safetensors_reference', 'reference.safetensors');
const tmp = mkdtempSync(join(tmpdir(), 'vlmix-sharded-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('openSafetensorsFile (lazy)', () => {
  it('gives the same names, dtypes, shapes and values as the in-memory reader, for every dtype', () => {
    const eager = readSafetensorsFileSync(REF);
    const lazy = openSafetensorsFile(REF);
    expect(lazy.names()).toEqual(eager.names());
    expect(lazy.metadata).toEqual(eager.metadata);
    for (const n of eager.names()) {
      const a = eager.get(n);
      const b = lazy.get(n);
      expect([b.dtype, b.shape]).toEqual([a.dtype, a.shape]);
      expect(b.bytes).toEqual(a.bytes);
      expect(Array.from(lazy.toFloat32(n))).toEqual(Array.from(eager.toFloat32(n)));
    }
  });

  it('reads tensor bytes only when asked: a file truncated after the header fails on access, naming the file', () => {
    const path = join(tmp, 'trunc.safetensors');
    const bytes = writeSafetensors({ a: tf.tensor1d([1, 2, 3, 4]), b: tf.tensor1d([5, 6]) });
    writeFileSync(path, bytes);
    const f = openSafetensorsFile(path);
    truncateSync(path, bytes.length - 4); // after opening: the header was valid then
    expect(f.get('a').shape).toEqual([4]); // header data costs no read
    expect(() => f.toFloat32('b')).toThrow(/unexpected end of file reading 8 bytes .*trunc\.safetensors/);
    expect(() => openSafetensorsFile(path)).toThrow(/data section has 20 bytes but the tensors cover only 24|beyond the end of the data section/);
  });
});

/** Writes `tensors` as a two-shard checkpoint with an HF-style index; returns the folder. */
function writeSharded(name: string, tensors: Record<string, tf.Tensor>): string {
  const dir = join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const names = Object.keys(tensors).sort();
  const half = Math.ceil(names.length / 2);
  const weightMap: Record<string, string> = {};
  [names.slice(0, half), names.slice(half)].forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeFileSync(join(dir, file), writeSafetensors(Object.fromEntries(part.map((n) => [n, tensors[n]!])), { dtypes: 'BF16' }));
    for (const n of part) weightMap[n] = file;
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  return dir;
}

describe('openSafetensorsIndex / openSafetensorsFolder (sharded checkpoints)', () => {
  const tensors = { 'a.weight': tf.tensor2d([[1, 2], [3, 4]]), 'b.weight': tf.tensor1d([0.5, -1.5]), 'c.bias': tf.tensor1d([256, 1 / 3]) };

  it('behaves as one file across shards; BF16 values decode to float32', () => {
    const dir = writeSharded('ok', tensors);
    const f = openSafetensorsFolder(dir);
    expect(f.names().sort()).toEqual(['a.weight', 'b.weight', 'c.bias']);
    expect(f.get('a.weight')).toMatchObject({ dtype: 'BF16', shape: [2, 2] });
    expect(Array.from(f.toFloat32('a.weight'))).toEqual([1, 2, 3, 4]);
    expect(Array.from(f.toFloat32('c.bias'))).toEqual([256, 0.333984375]); // 1/3 rounded to bf16
  });

  it('a missing shard is named (with a tensor it holds) when the index is opened', () => {
    const dir = writeSharded('missing', tensors);
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    expect(() => openSafetensorsIndex(join(dir, 'model.safetensors.index.json'))).toThrow(/lists 1 shard\(s\) that do not exist: model-00002-of-00002\.safetensors \(holds e\.g\. "c\.bias"\)/);
  });

  it('an index that points a tensor at the wrong shard, or at a path, is an error', () => {
    const dir = writeSharded('wrong', tensors);
    const idx = join(dir, 'model.safetensors.index.json');
    const j = JSON.parse(readFileSync(idx, 'utf8'));
    j.weight_map['c.bias'] = 'model-00001-of-00002.safetensors';
    writeFileSync(idx, JSON.stringify(j));
    expect(() => openSafetensorsIndex(idx).toFloat32('c.bias')).toThrow(/maps "c\.bias" to model-00001-of-00002\.safetensors, but that shard has no such tensor/);
    j.weight_map['c.bias'] = '../elsewhere.safetensors';
    writeFileSync(idx, JSON.stringify(j));
    expect(() => openSafetensorsIndex(idx)).toThrow(/weight_map\["c\.bias"\] must be a shard file name next to the index/);
  });

  it('a folder without safetensors says what it found', () => {
    const dir = join(tmp, 'empty');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'pytorch_model.bin'), '');
    expect(() => openSafetensorsFolder(dir)).toThrow(/neither model\.safetensors nor model\.safetensors\.index\.json \(files: pytorch_model\.bin\); it has PyTorch pickles/);
    copyFileSync(REF, join(dir, 'model.safetensors'));
    expect(openSafetensorsFolder(dir).names()).toEqual(readSafetensors(new Uint8Array(readFileSync(REF))).names());
  });
});
