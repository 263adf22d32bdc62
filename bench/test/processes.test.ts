import { describe, expect, it } from 'vitest';
import { aggregate, childArgs } from '../src/processes.js';
import { findTorchPython, runTorch, torchEnv } from '../src/torch.js';
import type { BenchResult, ResultsFile } from '../src/types.js';

function result(median: number, p25: number, p75: number, torch?: [number, number, number]): BenchResult {
  return {
    suite: 'kernels', group: 'matmul', name: 'matmul 8x8x8', backend: 'vlmix-cpu', params: {}, unit: 'ms', median,
    spread: { p25, p75, min: p25, max: p75 }, n: 5, inner: 1,
    ...(torch ? { torch: { median: torch[0], spread: { p25: torch[1], p75: torch[2], min: torch[1], max: torch[2] }, n: 5, inner: 1, threads: 2 } } : {}),
  };
}

function file(benchmarks: BenchResult[], load: number): ResultsFile {
  return {
    schema: 'vlmix-bench/1', date: '2026-12-03T00:00:00.000Z', command: 'pnpm bench', machine: { label: 'm', cpuModel: 'c', cpuFamily: null, cores: 2, memoryGiB: 1, flags: [], hypervisor: false, os: 'x' },
    versions: { node: '20', tfjs: '4.22.0', torch: '1.13', python: '3.11' }, backends: [{ name: 'vlmix-cpu', reason: '', threads: 2 }],
    policy: { size: 'quick', warmup: 1, repeats: 5, minSampleMs: 10, maxInner: 10, maxCaseMs: 1000, threads: 2 },
    torch: { used: true, python: 'p', threads: 2, note: '' }, ratioMeaning: '', load: { start: [load, 0, 0], end: [load + 1, 0, 0] }, notes: [`note ${load}`], benchmarks, fits: [],
  };
}

describe('--processes aggregate', () => {
  it('median and spread are across the processes medians, for vlmix and PyTorch; ratio and verdict follow', () => {
    const a = aggregate([file([result(10, 9, 11, [5, 4.9, 5.1])], 1), file([result(20, 19, 22, [6, 5.8, 6.2])], 2)], { command: 'pnpm bench --processes 2', dirs: ['process-1', 'process-2'] });
    const b = a.benchmarks[0]!;
    expect(b.median).toBe(15);
    expect(b.spread).toEqual({ p25: 12.5, p75: 17.5, min: 10, max: 20 });
    expect(b.n).toBe(2);
    expect(b.acrossProcesses!.medians).toEqual([10, 20]);
    // within-run (p75 - p25) / median: 0.2 and 0.15 -> median 0.175
    expect(b.acrossProcesses!.withinRunIqrRel).toBeCloseTo(0.175, 12);
    expect(b.torch!.median).toBe(5.5);
    expect(b.torch!.acrossProcesses!.medians).toEqual([5, 6]);
    expect(b.ratio).toBeCloseTo(15 / 5.5, 12);
    expect(b.verdictVsTorch).toBe('slower');
    expect(a.processes).toEqual({ count: 2, dirs: ['process-1', 'process-2'] });
    expect(a.load).toEqual({ start: [1, 0, 0], end: [3, 0, 0] });
    expect(a.notes).toEqual(['note 1', 'note 2']);
    expect(a.command).toBe('pnpm bench --processes 2');
  });

  it('overlapping run-to-run ranges are "no difference"; a process that failed is counted, one that never ran is an error', () => {
    const failed = { ...result(NaN, NaN, NaN), error: 'boom' };
    const a = aggregate([file([result(10, 9, 11, [10.5, 10, 11])], 1), file([failed], 1), file([result(11, 10, 12, [10, 9, 11])], 1)], { command: 'c', dirs: [] });
    const b = a.benchmarks[0]!;
    expect(b.median).toBe(10.5);
    expect(b.extra).toMatchObject({ failedInProcesses: 1 });
    expect(b.verdictVsTorch).toBe('no difference');
    const none = aggregate([file([failed], 1), file([failed], 1)], { command: 'c', dirs: [] });
    expect(none.benchmarks[0]!.error).toBe('boom');
  });

  it('children get the command line without --processes, --out and --json', () => {
    expect(childArgs(['--suite', 'kernels', '--processes', '3', '--out=o', '--json', 'j.json', '--filter', 'matmul'])).toEqual(['--suite', 'kernels', '--filter', 'matmul']);
    expect(childArgs(['--processes=2', '--keep-blas-env'])).toEqual(['--keep-blas-env']);
  });
});

describe('the PyTorch anchor', () => {
  it('torch runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unless kept, with vlmix\'s thread count everywhere', () => {
    const env = { OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_L2_SIZE: '512', PATH: '/bin' };
    const clean = torchEnv(2, false, env);
    expect(clean.OPENBLAS_CORETYPE).toBeUndefined();
    expect(clean.OPENBLAS_L2_SIZE).toBeUndefined();
    expect(clean).toMatchObject({ PATH: '/bin', OMP_NUM_THREADS: '2', MKL_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '2' });
    expect(torchEnv(3, true, env)).toMatchObject({ OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_L2_SIZE: '512', OPENBLAS_NUM_THREADS: '3' });
    expect(env.OPENBLAS_CORETYPE).toBe('Haswell'); // the caller's environment is left alone
  });

  const { found, tried } = findTorchPython();
  it.skipIf(!found)(`the torch process reports the BLAS it loaded and the core OpenBLAS picked${found ? '' : ` (skipped: ${tried.join('; ')})`}`, () => {
    const policy = { warmup: 1, repeats: 1, minSampleMs: 0, maxInner: 1, maxCaseMs: 10_000 };
    const job = [{ id: 'mm', kind: 'matmul', params: { m: 8, k: 8, n: 8 } }];
    const env = { ...process.env, OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_L2_SIZE: '512' };
    const fair = runTorch(found!, 'kernels', job, policy, 1, { env, memory: true });
    const kept = runTorch(found!, 'kernels', job, policy, 1, { env, keepBlasEnv: true });
    expect(fair.error).toBeUndefined();
    expect(fair.blas!.env).toMatchObject({ OPENBLAS_CORETYPE: null, OPENBLAS_L2_SIZE: null, OPENBLAS_NUM_THREADS: '1' });
    expect(kept.blas!.env).toMatchObject({ OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_L2_SIZE: '512' });
    expect(fair.results.get('mm')!.samples_ms).toHaveLength(1);
    const mem = fair.results.get('mm')!.memory!;
    expect(mem.allocPeakDeltaBytes).toBeGreaterThanOrEqual(8 * 8 * 4); // the 8x8 float32 output at least
    if (kept.blas!.openblas) {
      // OpenBLAS honours the pin when kept; unset, it picks its own core for this CPU.
      expect(kept.blas!.corename).toBe('Haswell');
      expect(fair.blas!.corename).toMatch(/\w+/);
      expect(fair.blas!.threads).toBe(1);
    }
  });
});
