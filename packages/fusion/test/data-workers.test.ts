// Folder data decoded by worker threads: the same batches and the same training run as decoding on the
// main thread; announced batches are decoded ahead and held only until drawn; errors name the file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { DecodePool, loadSharp, makeShapesDataset, qaToRecords, writeImageTextFolder } from '@vlmix/data';
import { createVlm, encodedBatches, folderSplit, trainVlm } from '../src/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmix-workers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function folder(name: string, n: number): Promise<string> {
  const dir = join(tmp, name);
  // 40-px images: every batch needs a resize to the model's 32 px as well as a decode
  await writeImageTextFolder(dir, qaToRecords(makeShapesDataset({ seed: 9, size: 40, train: n, heldOut: 0 }).train));
  return dir;
}

const values = (t: tf.Tensor) => Array.from(t.dataSync());

describe('folder data on worker threads', () => {
  it('prefetched batches equal the ones decoded in get(); only announced batches are held', async () => {
    const dir = await folder('same', 24);
    const vlm = createVlm('typeC-tiny');
    const split = await folderSplit(dir, vlm, 0);
    const plain = encodedBatches(vlm, split.train, 4);
    const pool = new DecodePool({ workers: 2 });
    const ahead = encodedBatches(vlm, split.train, 4, undefined, pool);
    try {
      ahead.prefetch!([3, 1, 5]);
      await ahead.ready!(3);
      await ahead.ready!(1);
      for (const i of [3, 1, 5, 0]) {
        const [a, b] = [plain.get(i), ahead.get(i)];
        expect(values(b.inputs.media!.pixels as tf.Tensor)).toEqual(values(a.inputs.media!.pixels as tf.Tensor));
        expect(b.ids).toEqual(a.ids);
        plain.dispose!(a);
        ahead.dispose!(b);
      }
    } finally {
      await pool.close();
      vlm.dispose();
    }
  });

  it('trainVlm: the loss curve with 2 decode workers equals the one decoded on the main thread, bit for bit (also type D)', async () => {
    const dir = await folder('train', 40);
    for (const preset of ['typeC-tiny', 'typeD-tiny']) {
      const run = (decodeWorkers: number) => trainVlm(preset, { steps: 6, dataDir: dir, batchSize: 4, heldOutSize: 4, decodeWorkers, imageDecoder: 'js', log: 'silent', vqSteps: 3, seed: 1 });
      const [main, workers] = [await run(0), await run(2)];
      expect(workers.lossCurve).toEqual(main.lossCurve);
      expect(workers.accuracy).toEqual(main.accuracy);
    }
  }, 120_000);

  it('imageDecoder sharp trains on the workers (losses within 0.05 of the JS decode); needs workers', async (t) => {
    if (!(await loadSharp())) t.skip('sharp is not installed here (optional dependency of @vlmix/data)');
    const dir = await folder('sharp', 24);
    const base = { steps: 4, dataDir: dir, batchSize: 4, heldOutSize: 4, log: 'silent' as const, seed: 2 };
    const js = await trainVlm('typeC-tiny', { ...base, decodeWorkers: 1, imageDecoder: 'js' });
    const sh = await trainVlm('typeC-tiny', { ...base, decodeWorkers: 1, imageDecoder: 'sharp' });
    sh.lossCurve.forEach((r, i) => expect(Math.abs(r.loss - js.lossCurve[i]!.loss)).toBeLessThan(0.05));
    await expect(trainVlm('typeC-tiny', { ...base, decodeWorkers: 0, imageDecoder: 'sharp' })).rejects.toThrow(/imageDecoder sharp decodes on the worker threads: decodeWorkers must be >= 1/);
  }, 60_000);

  it('resume at the exact record: 3 steps + resume to 8 equals 8 straight steps, with decode workers', async () => {
    const dir = await folder('resume', 36);
    const base = { dataDir: dir, batchSize: 4, heldOutSize: 0, decodeWorkers: 1, imageDecoder: 'js' as const, log: 'silent' as const, seed: 3 };
    const straight = await trainVlm('typeC-tiny', { ...base, steps: 8 });
    const out = join(tmp, 'resume-run');
    const stop = new AbortController(); // an interrupted 8-step run (same schedule), stopped after step 3
    const first = await trainVlm('typeC-tiny', { ...base, steps: 8, outDir: out, signal: stop.signal, onStep: (r) => { if (r.step === 3) stop.abort(); } });
    expect(first.interrupted).toBe(true);
    const resumed = await trainVlm('typeC-tiny', { ...base, steps: 8, outDir: out, resume: true });
    expect(resumed.resumedFrom).toBe(3);
    expect(resumed.lossCurve.map((r) => r.loss)).toEqual(straight.lossCurve.slice(3).map((r) => r.loss));
  }, 120_000);

  it('a corrupt image stops the run with the file named, decoded on a worker as on the main thread', async () => {
    const dir = await folder('bad', 12);
    const vlm = createVlm('typeC-tiny');
    const split = await folderSplit(dir, vlm, 0);
    writeFileSync(split.train[5]!.imageSource!.path, Buffer.from('not an image at all'));
    const pool = new DecodePool({ workers: 1 });
    try {
      const src = encodedBatches(vlm, split.train, 4, undefined, pool);
      src.prefetch!([1]);
      await expect(src.ready!(1)).rejects.toThrow(new RegExp(`${split.train[5]!.imageSource!.path.replace(/[.]/g, '\\.')}`));
      expect(() => src.get(1)).toThrow(/000005\.png/);
      await expect(trainVlm('typeC-tiny', { steps: 4, dataDir: dir, batchSize: 4, heldOutSize: 0, decodeWorkers: 1, log: 'silent' })).rejects.toThrow(/000005\.png/);
    } finally {
      await pool.close();
      vlm.dispose();
    }
  }, 60_000);
});
