import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { benchmarkKernels, formatReport } from './benchmark-kernels.js';

describe('examples/benchmark-kernels', () => {
  it('times matmul, attention and layer norm on each available backend (no timing assertions)', async () => {
    const before = tf.getBackend();
    const r = await benchmarkKernels({
      backends: ['vlmix-cpu', 'cpu', 'tensorflow'],
      repeats: 1,
      shapes: { matmul: [8, 16, 4], attention: [1, 2, 5, 4], layerNorm: [3, 8] },
    });
    expect(tf.getBackend()).toBe(before);
    const ran = [...new Set(r.rows.map((x) => x.backend))];
    // Every backend either ran all three kernels or was skipped with a reason.
    expect([...ran, ...r.skipped.map((s) => s.backend)].sort()).toEqual(['cpu', 'tensorflow', 'vlmix-cpu']);
    expect(ran).toContain('cpu');
    for (const b of ran) expect(r.rows.filter((x) => x.backend === b).map((x) => x.kernel)).toEqual(['matmul', 'attention', 'layerNorm']);
    expect(r.rows.find((x) => x.kernel === 'attention')!.shape).toBe('[1, 2, 5, 4] causal');
    for (const x of r.rows) expect(x.medianMs >= 0 && Number.isFinite(x.gflops)).toBe(true);
    for (const s of r.skipped) expect(s.reason).toMatch(/unavailable/);
    expect(formatReport(r).split('\n')[0]).toBe('| backend | kernel | shape | median ms | GFLOP/s |');
  });
});
