import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BackendChoice } from '@vlmix/backend-native';
import { trainOnBestBackend } from './train-gpu.js';

const dir = mkdtempSync(join(tmpdir(), 'vlmix-train-gpu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('examples/train-gpu', () => {
  it('trains a preset for 2 steps on tiny data and checkpoints it', async () => {
    // Keep the backend the test run chose (VLMIX_BACKEND); 'auto' would switch it.
    const current = tf.getBackend() as BackendChoice;
    const r = await trainOnBestBackend({ preset: 'typeC-tiny', steps: 2, batchSize: 4, trainSize: 8, heldOut: 4, outDir: dir, backend: current, log: 'silent' });
    expect(r.backend).toBe(current);
    expect(r.history.map((h) => h.step)).toEqual([1, 2]);
    expect(r.history.every((h) => Number.isFinite(h.loss) && h.loss > 0 && h.tokens! > 0)).toBe(true);
    expect(r.accuracy).toBeGreaterThanOrEqual(0);
    expect(r.lastCheckpoint?.step).toBe(2);
    const state = JSON.parse(readFileSync(join(dir, 'checkpoint', 'state.json'), 'utf8'));
    expect(state.step).toBe(2);
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.step)).toEqual([1, 2]);
  });
});
