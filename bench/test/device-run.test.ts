// The GPU run's pieces that can be checked here: the bench options it uses, the PyTorch reference's
// device switch (CPU side), and the summary it writes from a run's work folder.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ArgError, parseArgs } from '../src/args.js';
import { findTorchPython } from '../src/torch.js';

const top = resolve(__dirname, '..', '..');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('bench options for the device run', () => {
  it('--backend vlmix-cuda, --torch-device cuda and --tf32 parse; bad devices are named', () => {
    const o = parseArgs(['--backend', 'vlmix-cuda', '--torch-device', 'cuda', '--tf32']);
    expect(o.backends).toEqual(['vlmix-cuda']);
    expect(o.torchDevice).toBe('cuda');
    expect(o.tf32).toBe(true);
    expect(() => parseArgs(['--torch-device', 'gpu'])).toThrow(new ArgError("--torch-device: unknown value 'gpu'; allowed: cpu, cuda"));
    expect(() => parseArgs(['--tf32=1'])).toThrow(/--tf32: takes no value/);
  });
});

describe('PyTorch reference on a device', () => {
  const py = findTorchPython().found;
  it.skipIf(!py)('kernels.py runs a bf16 matmul and sdpa on the CPU and rejects an unknown device by name', () => {
    const spec = (device: string) => JSON.stringify({ threads: 1, device, policy: { warmup: 1, repeats: 2, min_sample_ms: 1, max_inner: 2, max_case_ms: 500 },
      jobs: [{ id: 'mm', kind: 'matmul', params: { m: 8, k: 8, n: 8, dtype: 'bfloat16' } }, { id: 'sdpa', kind: 'sdpa', params: { b: 1, h: 2, t: 8, d: 4, backward: true } }] });
    const run = (device: string) => spawnSync(py!.python, [join(top, 'bench', 'reference', 'kernels.py')], { input: spec(device), encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
    const ok = run('cpu');
    expect(ok.status, ok.stderr).toBe(0);
    const out = JSON.parse(ok.stdout) as { device: string; results: { id: string; samples_ms?: number[]; error?: string }[] };
    expect(out.device).toBe('cpu');
    const mm = out.results.find((r) => r.id === 'mm')!;
    expect(mm.samples_ms?.length).toBe(2);
    // torch 1.13 (Debian) has no scaled_dot_product_attention: then the job reports the error, the rest runs
    const sdpa = out.results.find((r) => r.id === 'sdpa')!;
    expect(sdpa.samples_ms?.length ?? sdpa.error).toBeTruthy();
    const bad = run('tpu');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/device: expected cpu or cuda, got 'tpu'/);
  });
});

describe('bench/device/summary.mjs', () => {
  it('summarises stages, parity, bench rows and the demo from a work folder', () => {
    const work = mkdtempSync(join(tmpdir(), 'vlmix-devsum-'));
    dirs.push(work);
    const out = join(work, 'out');
    mkdirSync(out);
    writeFileSync(join(work, 'stages.jsonl'), '{"stage":"parity","rc":0,"seconds":40,"cap":100}\n{"stage":"demo-typeA-tiny","rc":124,"seconds":40,"cap":40}\n');
    mkdirSync(join(work, 'parity'));
    writeFileSync(join(work, 'parity', 'parity.json'), JSON.stringify({ ok: false, summary: { pass: 570, fail: 1, skip: 0 }, cuda: { available: true, pass: 280, fail: 1 }, failures: [{ name: 'vlmix-cuda > softmax 50k', error: 'max diff 1e-2\nstack' }] }));
    // the kernels and presets stages write separate folders; the summary reads them as one table
    mkdirSync(join(work, 'bench-kernels'));
    writeFileSync(join(work, 'bench-kernels', 'results.json'), JSON.stringify({ machine: 'H200', torch: { used: true, note: 'PyTorch 2.9 on CUDA' }, benchmarks: [
      { name: 'layer norm 2048x256', backend: 'vlmix-cuda', unit: 'ms', median: 0.04, torch: { median: 0.05 }, ratio: 0.8 },
    ] }));
    mkdirSync(join(work, 'bench-arch'));
    writeFileSync(join(work, 'bench-arch', 'results.json'), JSON.stringify({ machine: 'H200', torch: { used: true, note: 'PyTorch 2.9 on CUDA' }, benchmarks: [
      { name: 'typeC-tiny train step', backend: 'vlmix-cuda', unit: 'ms', median: 3, torch: { median: 2 }, ratio: 1.5 },
    ] }));
    mkdirSync(join(work, 'demo', 'typeB-tiny'), { recursive: true });
    writeFileSync(join(work, 'demo', 'typeB-tiny', 'results.json'), JSON.stringify({ backend: 'vlmix-cuda', totalSeconds: 20, results: [
      { steps: 2500, stepMs: 7, trainSeconds: 17.5, accuracy: 0.99, accuracyByKind: { color: 1, shape: 0.99, position: 0.98 } },
    ] }));
    execFileSync(process.execPath, [join(top, 'bench', 'device', 'summary.mjs'), work, out], { encoding: 'utf8' });
    const md = readFileSync(join(out, 'summary.md'), 'utf8');
    expect(md).toContain('| demo-typeA-tiny | 124 | 40 | 40 |');
    expect(md).toContain('570 passed, 1 failed, 0 skipped (vlmix-cuda 280 passed, 1 failed)');
    expect(md).toContain('- FAIL vlmix-cuda > softmax 50k: max diff 1e-2');
    expect(md).toContain('PyTorch: PyTorch 2.9 on CUDA');
    expect(md).toContain('| layer norm 2048x256 | vlmix-cuda | ms | 0.0400 | 0.0500 | 0.800 |');
    expect(md).toContain('| typeC-tiny train step | vlmix-cuda | ms | 3.00 | 2.00 | 1.50 |');
    expect(md).not.toContain('Large matmuls'); // no bench-large folder: no section
    expect(md).toContain('| typeB-tiny | yes | 2500 | 7.00 | 17.5 | 99.0% | 99.0% |');
    expect(md).toContain('| typeA-tiny | no (cap or error: see demo-*.log)');
    expect(md).toContain('| typeB-tiny-tf32 | no (cap or error: see demo-*.log)');
    const j = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { demo: { preset: string; finished: boolean; singleAttribute?: number }[] };
    expect(j.demo.find((d) => d.preset === 'typeB-tiny')!.singleAttribute).toBeCloseTo(0.99, 10);
  });
});
