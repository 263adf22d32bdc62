// Fault injection in one process: a full disk, an I/O error, a read-only directory, and a crash after
// every stage of every checkpoint write. The invariant each time: training stops with a clear error
// (or the crash), the directory holds a verified checkpoint, and resuming from it is bit-exact.
import { chmodSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Model } from '@vlmix/core';
import { CheckpointWriteError, Trainer, loadCheckpoint, readMetrics, warmupCosine, type SaveStage, type TrainerOptions } from '../src/index.js';
import { injectWriteFault } from './fault-fs.js';
import { copyData, copyLoss, tinyModel, type CopyBatch } from './helpers.js';
import { tempDirs } from './temp-dirs.js';

const tmp = tempDirs('vlmix-faults-');

const STEPS = 6;
const opts = (model: Model, extra: Partial<TrainerOptions<CopyBatch, Model>>): TrainerOptions<CopyBatch, Model> => ({
  model, data: copyData(5, 4), lossFn: copyLoss, steps: STEPS, seed: 'f', log: 'silent', clipNorm: 1,
  optimizer: { lr: 5e-3, weightDecay: 0.1 }, schedule: warmupCosine({ lr: 5e-3, warmupSteps: 2, totalSteps: STEPS, minLr: 1e-4 }),
  ...extra,
});
const weights = (m: Model) => m.params.list().map((p) => Array.from(p.variable.dataSync()));

let reference: { losses: number[]; w: number[][] } | null = null;
async function straight() {
  if (reference) return reference;
  const m = tinyModel();
  const t = new Trainer(opts(m, {}));
  const losses = (await t.train()).history.map((r) => r.loss);
  reference = { losses, w: weights(m) };
  t.dispose();
  m.dispose();
  return reference;
}

/** The invariant: a verified checkpoint at `step`, and resuming from it ends exactly like the straight run. */
async function expectExactResume(out: string, step: number, check: { metricsFile?: boolean } = {}) {
  const ck = await loadCheckpoint(out);
  expect(ck.state.step).toBe(step);
  expect(ck.warnings).toEqual([]);
  expect(readdirSync(join(out, 'checkpoint')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  const m = tinyModel(7);
  const t = new Trainer(opts(m, { outDir: out }));
  await t.resume(ck);
  const { history } = await t.train();
  const ref = await straight();
  expect(history.map((r) => r.loss)).toEqual(ref.losses);
  if (check.metricsFile) expect(readMetrics(join(out, 'metrics.jsonl')).map((r) => r.loss)).toEqual(ref.losses);
  expect(weights(m)).toEqual(ref.w);
  t.dispose();
  m.dispose();
}

/** Trains with a checkpoint every 2 steps while `fault` is installed; returns the error. */
async function trainWithFault(out: string, fault: Parameters<typeof injectWriteFault>[0]) {
  const m = tinyModel();
  const t = new Trainer(opts(m, { outDir: out, checkpointEvery: 2 }));
  const f = injectWriteFault(fault);
  let err: unknown;
  try {
    await t.train();
  } catch (e) {
    err = e;
  } finally {
    f.restore();
  }
  expect(f.hits()).toBe(1);
  t.dispose();
  m.dispose();
  return err as Error;
}

describe('write failures stop training with a clear error and keep the last checkpoint', () => {
  it('ENOSPC in the middle of a model file', async () => {
    const out = tmp();
    const dir = join(out, 'checkpoint');
    // skip 1: the step-2 checkpoint's model file succeeds, the step-4 one fails after 1000 bytes.
    const err = await trainWithFault(out, { match: /model-\d+\.safetensors/, fault: 'ENOSPC', afterBytes: 1000, skip: 1 });
    expect(err).toBeInstanceOf(CheckpointWriteError);
    expect(err.message).toMatch(new RegExp(`^could not write the checkpoint of step 4 to ${dir}: ENOSPC: no space left on device, write '.*model-00000004\\.safetensors.*\\.tmp'; training stopped; the last good checkpoint \\(step 2\\) in ${dir} is intact$`));
    await expectExactResume(out, 2, { metricsFile: true });
  });

  it('EIO while committing state.json (the per-step state was written)', async () => {
    const out = tmp();
    const err = await trainWithFault(out, { match: /\.state\.json\./, fault: 'EIO', skip: 1 });
    expect(err.message).toMatch(/^could not write the checkpoint of step 4 to .*: EIO: i\/o error, open '.*state\.json.*'; training stopped; the last good checkpoint \(step 2\)/);
    expect(existsSync(join(out, 'checkpoint', 'state-00000004.json'))).toBe(true); // complete but not committed
    await expectExactResume(out, 2, { metricsFile: true });
  });

  it('a read-only file system (EROFS) from the first checkpoint on: nothing committed, a clear error', async () => {
    const out = tmp();
    const err = await trainWithFault(out, { match: /checkpoint/, fault: 'EROFS' });
    expect(err.message).toMatch(/^could not write the checkpoint of step 2 to .*: EROFS: read-only file system, open '.*'; training stopped \(no checkpoint was written yet\)$/);
    expect(existsSync(join(out, 'checkpoint', 'state.json'))).toBe(false);
  });

  it.skipIf(process.getuid?.() === 0)('a read-only directory (chmod; root ignores permissions, so skipped as root)', async () => {
    const out = tmp();
    const m = tinyModel();
    const t = new Trainer(opts(m, { outDir: out, checkpointEvery: 2, steps: 2 }));
    await t.train();
    chmodSync(join(out, 'checkpoint'), 0o555);
    const t2 = new Trainer(opts(m, { outDir: out, checkpointEvery: 2 }));
    await t2.resume(out);
    await expect(t2.train()).rejects.toThrow(/could not write the checkpoint of step 4 to .*: EACCES: permission denied.*the last good checkpoint \(step 2\)/);
    chmodSync(join(out, 'checkpoint'), 0o755);
    t.dispose();
    t2.dispose();
    m.dispose();
    await expectExactResume(out, 2);
  });
});

describe('a crash after any stage of any checkpoint write', () => {
  it('leaves a verified checkpoint from which the run resumes bit-exactly (every step x every stage)', async () => {
    const stages: SaveStage[] = ['model', 'optimizer', 'step-state', 'state'];
    for (let step = 1; step < STEPS; step++) {
      for (const stage of stages) {
        const out = tmp();
        const m = tinyModel();
        const t = new Trainer(opts(m, { outDir: out, steps: step - 1, checkpointEvery: 1 }));
        await t.train(); // checkpoints 1 .. step-1 (step 0 for step 1: train() always ends with one)
        t.trainStep(); // (not through train(): no metrics line, so the check below reads the history)
        const crash = new Error('crash');
        await expect(t.save(undefined, { onStage: (s) => { if (s === stage) throw crash; } })).rejects.toBe(crash);
        t.dispose();
        m.dispose();
        // Committed when the crash came after the state.json stage; otherwise the previous one stands.
        await expectExactResume(out, stage === 'state' ? step : step - 1);
      }
    }
  });
});
