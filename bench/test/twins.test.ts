/**
 * Cross-framework check of every preset's whole recipe: vlmix and its PyTorch twin (bench/reference/twins.py),
 * initialised from the same weights, train 5 steps on the same batches with the `vlmix train` recipe
 * (AdamW, weight decay on rank >= 2, clipping at 1, warmup-cosine). Runs where a python with torch is found
 * (findTorchPython: $VLMIX_TORCH_PYTHON, /usr/bin/python3, python3); skipped with the reason elsewhere.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { exportTwin, type TwinSpec } from '../src/twins/export.js';
import { findTorchPython, REFERENCE_DIR } from '../src/torch.js';

const native = tf.getBackend() === 'vlmix-cpu';
// Two of the small tier (20-60 M parameters) too, where the bench's small suite compares speed and memory;
// only on vlmix-cpu (stock tfjs 'cpu' would take many minutes).
const SMALL = native ? ['typeA-small', 'typeC-small'] : [];
const PRESETS = ['typeA-tiny', 'typeB-tiny', 'typeC-tiny', 'typeC-qformer-tiny', 'typeD-tiny', 'lm-tiny', ...SMALL];
const STEPS = 5;
// Stock tfjs 'cpu' (no native addon) takes minutes for batch 8 on all presets: half the batch there; the
// small tier at batch 2.
const batchOf = (p: string) => (SMALL.includes(p) ? 2 : native ? 8 : 4);

const { found, tried } = findTorchPython();
const skip = found ? '' : `no python with torch (${tried.join('; ')})`;

interface Checked {
  preset: string;
  generate?: number[];
  generateMargins?: number[];
  steps: { loss: number; lr: number; gradNorm: number }[];
  gradNorms: Record<string, number>;
  vqCodes?: { mismatched: number; total: number };
  forwardArgmax?: { mismatched: number; unsure: number; total: number };
  error?: string;
}

/** Runs twins.py check on the directories in one python process (asynchronously: it takes seconds). */
function runTwins(dirs: string[]): Promise<Checked[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(found!.python, [join(REFERENCE_DIR, 'twins.py'), 'check', ...dirs], { env: { ...process.env, VLMIX_TWIN_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1' } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) reject(new Error(`twins.py failed (exit ${code}): ${err.trim().split('\n').slice(-5).join(' | ')}`));
      else resolve(JSON.parse(out) as Checked[]);
    });
  });
}

const rel = (a: number, b: number, floor = 0) => Math.abs(a - b) / (Math.abs(b) + floor);

describe.skipIf(!!skip)(`PyTorch twins of the presets${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const root = mkdtempSync(join(tmpdir(), 'vlmix-twins-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const specs = new Map<string, TwinSpec>();
  let checked: Checked[] = [];

  for (const p of PRESETS) {
    it(`${p}: exports weights, ${STEPS} batches and vlmix's training records`, async () => {
      specs.set(p, await exportTwin(p, join(root, p), { batchSize: batchOf(p), batches: STEPS, samples: 'shapes', train: true, prompt: true, seed: 0 }));
      expect(specs.get(p)!.vlmix).toHaveLength(STEPS);
    }, 600_000);
  }

  it('runs every twin (one python process); a mixin without a twin is an error naming it', async () => {
    const unknown = await exportTwin('lm-tiny', join(root, 'unknown'), { batchSize: 2, batches: 1, samples: 'shapes' });
    unknown.mixins.push({ name: 'lora', kind: 'unknown' });
    writeFileSync(join(root, 'unknown', 'spec.json'), JSON.stringify(unknown));
    checked = await runTwins([...PRESETS.map((p) => join(root, p)), join(root, 'unknown')]);
    expect(checked.map((c) => c.error ?? c.preset)).toEqual([...PRESETS, expect.stringMatching(/no PyTorch twin for mixin\(s\) lora/)]);
  }, 600_000);

  for (const preset of PRESETS) {
    it(`${preset}: the first ${STEPS} training losses agree to 1e-5 relative, and so do the lr, the clipped grad norm and every parameter's gradient`, () => {
      const spec = specs.get(preset)!;
      const twin = checked.find((c) => c.preset === preset)!;
      const vl = spec.vlmix!;
      expect(twin.steps).toHaveLength(STEPS);
      // The training moved the model: the losses are not all the same number.
      expect(vl[STEPS - 1]!.loss).toBeLessThan(vl[0]!.loss - 0.05);
      // Measured agreement is <= 2e-7 on every preset; 1e-5 (tighter than the issue's 1e-4) still leaves 50x.
      // The small tier's reductions are 10-100x longer (8192-way softmax, 196-token images, 512-wide rows):
      // its gradient norms drift apart by ~1e-4 in float32 after a few steps (measured 1.3e-4 at step 4).
      const gradTol = SMALL.includes(preset) ? 1e-3 : 1e-4;
      twin.steps.forEach((s, i) => {
        expect(rel(s.loss, vl[i]!.loss), `step ${i + 1} loss: torch ${s.loss}, vlmix ${vl[i]!.loss}`).toBeLessThan(1e-5);
        expect(s.lr).toBeCloseTo(vl[i]!.lr, 12);
        expect(rel(s.gradNorm, vl[i]!.gradNorm), `step ${i + 1} grad norm`).toBeLessThan(gradTol);
      });
      // Per-parameter gradient norms at init catch what a loss hides (wrong CogVLM positions move typeB's
      // losses by 5e-5 only, these by 2e-3). Floor: 1e-4 of the largest norm (some gradients, e.g. of a key
      // bias, are exactly zero in theory and roundoff in practice).
      const mine = spec.vlmixGradNorms!;
      expect(Object.keys(twin.gradNorms).sort()).toEqual(Object.keys(mine).sort());
      const floor = 1e-4 * Math.max(...Object.values(mine));
      for (const [name, v] of Object.entries(mine)) {
        expect(rel(twin.gradNorms[name]!, v, floor), `gradient norm of ${name}: torch ${twin.gradNorms[name]}, vlmix ${v}`).toBeLessThan(gradTol);
      }
      if (preset === 'typeD-tiny') expect(twin.vqCodes).toMatchObject({ mismatched: 0, total: batchOf(preset) * STEPS * 64 });
      // the inference forward (type D: its logits masked by the VQ mixin) picks vlmix's token at every position
      const fa = twin.forwardArgmax!;
      expect(fa.total).toBe(spec.vlmixForwardArgmax!.flat().length);
      expect(fa.mismatched, `${fa.mismatched} of ${fa.total} positions pick another token`).toBe(0);
      expect(fa.unsure).toBeLessThan(fa.total / 10);
    });

    it(`${preset}: greedy generation with a KV cache gives vlmix's tokens (image encoded once, decode-step routing and positions, type D's code mask)`, () => {
      const mine = specs.get(preset)!.vlmixGenerate!;
      const twin = checked.find((c) => c.preset === preset)!;
      expect(mine).toHaveLength(8);
      // Compared up to the first step whose two best logits are within 1e-4 (a tie float noise may break either way).
      const sure = twin.generateMargins!.findIndex((m) => m < 1e-4);
      const n = sure < 0 ? mine.length : sure + 1;
      expect(n, 'steps with a clear argmax').toBeGreaterThanOrEqual(4);
      expect(twin.generate!.slice(0, n)).toEqual(mine.slice(0, n));
    });
  }
});
