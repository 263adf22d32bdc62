import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBench } from '../src/run.js';
import type { ResultsFile } from '../src/types.js';

const dir = mkdtempSync(join(tmpdir(), 'vlmix-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TINY = {
  matmul: [[8, 8, 8]] as [number, number, number][],
  attn: { batch: 1, heads: 2, headDim: 4, seqs: [8], bmmSeqs: [8] },
  norm: [[4, 8]] as [number, number][],
  softmax: [[4, 8]] as [number, number][],
  gelu: [16],
  ce: [[4, 8]] as [number, number][],
  gather: [{ vocab: 16, dim: 4, n: 8 }],
  scatter: [{ vocab: 16, dim: 4, n: 8 }],
  adamw: [32],
  overheadCalls: 10,
  timer: { warmup: 1, repeats: 1, minSampleMs: 0, maxInner: 1, maxCaseMs: 60000 },
};

describe('end to end', () => {
  it('kernels suite, 1 repeat, tiny sizes -> results.json of the documented shape, report and charts', async () => {
    const lines: string[] = [];
    const { results, dir: out } = await runBench({
      backends: ['cpu'], suites: ['kernels'], size: 'quick', repeats: 1, warmup: 1, torch: 'off', help: false,
      out: join(dir, 'out'), json: join(dir, 'copy.json'), sizeOverride: TINY, log: (l) => lines.push(l), machine: 'test box',
    });
    expect(out).toBe(join(dir, 'out'));
    const file = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as ResultsFile;
    expect(JSON.parse(readFileSync(join(dir, 'copy.json'), 'utf8'))).toEqual(file);
    expect(file.schema).toBe('vlmix-bench/1');
    expect(file.machine.label).toBe('test box');
    expect(typeof file.machine.cpuModel).toBe('string');
    expect(file.machine.cores).toBeGreaterThan(0);
    expect(file.versions.node).toBe(process.versions.node);
    expect(file.versions.tfjs).toBe('4.22.0');
    expect(file.versions.torch).toBeNull();
    expect(file.backends.map((b) => b.name)).toEqual(['cpu']);
    expect(file.torch.used).toBe(false);
    expect(new Date(file.date).getTime()).not.toBeNaN();
    expect(file.policy).toMatchObject({ size: 'quick', warmup: 1, repeats: 1 });

    const names = file.benchmarks.map((b) => b.name);
    for (const want of ['matmul 8x8x8', 'batched matmul 2x8x4x8', 'attention fwd T=8', 'attention fwd+bwd T=8', 'layer norm 4x8', 'RMS norm 4x8',
      'softmax 4x8', 'GELU 16', 'softmax cross-entropy 4x8', 'gather 8 of 16x4', 'scatter-add (UnsortedSegmentSum) 8 into 16x4', 'AdamW step 32']) {
      expect(names).toContain(want);
    }
    expect(names.some((n) => n.startsWith('per-op overhead'))).toBe(true);
    for (const b of file.benchmarks) {
      expect(b.error).toBeUndefined();
      expect(b.suite).toBe('kernels');
      expect(b.backend).toBe('cpu');
      expect(typeof b.name).toBe('string');
      expect(typeof b.params).toBe('object');
      expect(['ms', 'us/op', 'tokens/s']).toContain(b.unit);
      expect(b.n).toBe(1);
      expect(b.median).toBeGreaterThan(0);
      expect(Object.keys(b.spread).sort()).toEqual(['max', 'min', 'p25', 'p75']);
      expect(b.spread.min).toBeLessThanOrEqual(b.median);
      expect(b.spread.max).toBeGreaterThanOrEqual(b.median);
      expect(b.torch).toBeUndefined();
      expect(b.ratio).toBeUndefined();
    }
    expect(file.benchmarks.find((b) => b.name.startsWith('per-op overhead'))!.unit).toBe('us/op');
    expect(results.benchmarks).toHaveLength(file.benchmarks.length);

    const report = readFileSync(join(out, 'report.md'), 'utf8');
    expect(report).toContain('test box');
    expect(report).toContain('| matmul 8x8x8 | ms |');
    const svgs = readdirSync(out).filter((f) => f.endsWith('.svg'));
    expect(svgs).toContain('kernels-matmul.svg');
    expect(existsSync(join(out, 'kernels-overhead.svg'))).toBe(true);
    expect(lines.some((l) => l.includes('matmul 8x8x8'))).toBe(true);
  });
});
