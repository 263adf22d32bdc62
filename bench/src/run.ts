/** Runs the selected suites on each backend (and in PyTorch), computes statistics and writes the outputs. */
import * as tf from '@tensorflow/tfjs';
import * as native from '@vlmix/backend-native';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendName, BenchOptions } from './args.js';
import { machineInfo } from './machine.js';
import { writeReport } from './report.js';
import { resolveSizes, type SizeOverride } from './sizes.js';
import { compare, fitPowerLaw, summarize } from './stats.js';
import { kernelCases } from './suites/kernels.js';
import { archCases, scalingCases } from './suites/models.js';
import { measure, toUnit, type TimerPolicy } from './timer.js';
import { findTorchPython, runTorch, type TorchJobSpec, type TorchRun, type TorchScript } from './torch.js';
import type { BenchCase, BenchResult, Fit, ResultsFile } from './types.js';

export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface RunOptions extends BenchOptions {
  /** Internal: shrink problem sizes (tests). */
  sizeOverride?: SizeOverride;
  log?: (line: string) => void;
  /** The command line recorded in results.json. */
  command?: string;
}

export const RATIO_MEANING = 'vlmix time / PyTorch time for the same shapes (> 1: vlmix slower, < 1: vlmix faster); ' +
  'for tokens/s benchmarks PyTorch tokens/s / vlmix tokens/s, which is the same time ratio';

function timestamp(d: Date): string {
  return d.toISOString().replace(/[:]/g, '-').replace(/\..+$/, '');
}

/** bench/out/<timestamp> (git-ignored): where a run writes without --out. */
export function defaultOutDir(d = new Date()): string {
  return join(BENCH_DIR, 'out', timestamp(d));
}

const lowerIsBetter = (unit: string) => unit !== 'tokens/s';

/** Stable id of a PyTorch job: identical shapes are measured once. */
function jobId(c: BenchCase): string {
  return `${c.torch!.script}:${c.torch!.kind}:${JSON.stringify(c.torch!.params)}:${c.inner ?? ''}`;
}

async function selectBackend(name: BackendName): Promise<{ backend: string; reason: string }> {
  return native.useBackend(name);
}

export async function runBench(o: RunOptions): Promise<{ results: ResultsFile; dir: string }> {
  const log = o.log ?? ((s: string) => process.stdout.write(`${s}\n`));
  const started = new Date();
  const loadStart = os.loadavg();
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const envThreads = Number(process.env.VLMIX_NUM_THREADS);
  const threads = o.threads ?? (Number.isInteger(envThreads) && envThreads > 0 ? envThreads : cores);
  // The native thread pool reads VLMIX_NUM_THREADS when it starts (first native call).
  process.env.VLMIX_NUM_THREADS = String(threads);

  const sizes = resolveSizes(o.size, o.sizeOverride);
  const policy: TimerPolicy = {
    warmup: o.warmup ?? sizes.timer.warmup,
    minWarmupMs: sizes.timer.minWarmupMs,
    repeats: o.repeats ?? sizes.timer.repeats,
    minSampleMs: sizes.timer.minSampleMs,
    maxInner: sizes.timer.maxInner,
    maxCaseMs: sizes.timer.maxCaseMs,
  };
  const notes: string[] = [];
  const before = tf.getBackend();

  // Backends first (the arch suite's presets are created on the selected backend).
  const backends: ResultsFile['backends'] = [];
  for (const b of o.backends) {
    const r = await selectBackend(b);
    if (backends.some((x) => x.name === r.backend)) continue;
    const info = r.backend === native.BACKEND_NAME ? { ...native.nativeInfo() } as Record<string, unknown> : undefined;
    const bThreads = r.backend === native.BACKEND_NAME ? native.nativeInfo().threads : 1;
    backends.push({ name: r.backend, reason: r.reason, threads: bThreads, ...(info ? { info } : {}) });
  }

  // PyTorch is looked for once, up front: the arch suite exports its presets for their twins only when it will run.
  const torchProbe = o.torch === 'auto' ? findTorchPython() : null;
  const twinDir = torchProbe?.found && (o.suites.includes('arch') || o.suites.includes('small')) ? mkdtempSync(join(os.tmpdir(), 'vlmix-bench-twins-')) : undefined;
  try {
    let cases: BenchCase[] = [];
    if (o.suites.includes('kernels')) cases.push(...kernelCases(sizes));
    if (o.suites.includes('arch')) {
      const a = await archCases(sizes, { twinDir });
      cases.push(...a.cases);
      notes.push(...a.notes);
    }
    if (o.suites.includes('scaling')) cases.push(...scalingCases(sizes));
    if (o.suites.includes('small')) {
      const a = await archCases(sizes, { twinDir, tier: 'small' });
      cases.push(...a.cases);
      notes.push(...a.notes);
    }
    if (o.filter?.length) cases = cases.filter((c) => o.filter!.some((f) => c.name.includes(f)));

    const results: BenchResult[] = [];
    if (o.precision === 'bf16') notes.push('--precision bf16: vlmix-cpu with bf16 matmuls (bf16 operands, fp32 sums); PyTorch twins under torch.autocast(cpu, bfloat16); other backends and the kernels suite\'s PyTorch side stay fp32');
    for (const be of backends) {
      const r = await selectBackend(be.name as BackendName);
      if (r.backend === native.BACKEND_NAME) native.setMatmulPrecision(o.precision ?? 'fp32');
      log(`backend ${r.backend} (${r.reason}${r.backend === native.BACKEND_NAME && o.precision === 'bf16' ? ', bf16 matmuls' : ''})`);
      for (const c of cases) {
        const base: Omit<BenchResult, 'median' | 'spread' | 'n' | 'inner'> = {
          suite: c.suite, group: c.group, name: c.name, backend: be.name, params: c.params, unit: c.unit,
          ...(c.curve ? { curve: c.curve } : {}),
        };
        let prepared: ReturnType<BenchCase['setup']> | null = null;
        const tensorsBefore = tf.memory().numTensors;
        try {
          prepared = c.setup();
          const m = measure(prepared.run, policy, c.inner);
          const s = summarize(m.samplesMs.map((ms) => toUnit(ms, c.unit, c.perCall)));
          const extra = c.extra ? await c.extra(prepared) : undefined;
          results.push({ ...base, median: s.median, spread: s.spread, n: s.n, inner: m.inner, ...(extra ? { extra } : {}) });
          log(`  ${c.name}: ${s.median.toPrecision(4)} ${c.unit} [${s.spread.p25.toPrecision(3)}–${s.spread.p75.toPrecision(3)}] x${m.inner}`);
        } catch (e) {
          const msg = (e as Error).message.split('\n')[0]!;
          results.push({ ...base, median: NaN, spread: { p25: NaN, p75: NaN, min: NaN, max: NaN }, n: 0, inner: 0, error: msg });
          log(`  ${c.name}: FAILED ${msg}`);
        } finally {
          try {
            prepared?.dispose();
          } catch {
            /* already gone */
          }
          const leaked = tf.memory().numTensors - tensorsBefore;
          const last = results[results.length - 1];
          if (leaked !== 0 && last) {
            last.extra = { ...last.extra, leakedTensors: leaked };
            log(`    (${leaked} tensors left after dispose)`);
          }
        }
      }
    }

    // PyTorch side by side.
    let torchInfo: ResultsFile['torch'] = { used: false, python: null, threads: null, note: 'disabled (--torch off)' };
    let torchVersion: string | null = null;
    let pythonVersion: string | null = null;
    const torchRuns: TorchRun[] = [];
    const withTorch = cases.filter((c) => c.torch);
    if (o.torch === 'auto' && withTorch.length) {
      const { found, tried } = torchProbe!;
      if (!found) {
        torchInfo = { used: false, python: null, threads: null, note: `no python with torch found (${tried.join('; ')})` };
        log(`torch: ${torchInfo.note}`);
      } else {
        torchVersion = found.torch;
        pythonVersion = found.pythonVersion;
        for (const script of ['kernels', 'models', 'twins'] as TorchScript[]) {
          const jobs = new Map<string, TorchJobSpec>();
          for (const c of withTorch) {
            if (c.torch!.script !== script) continue;
            const id = jobId(c);
            // On a GPU the attention anchor is torch's fused scaled_dot_product_attention.
            const kind = o.torchDevice === 'cuda' && c.torch!.kind === 'attention' ? 'sdpa' : c.torch!.kind;
            // --precision bf16: the twins' forward and train step under PyTorch's CPU autocast to bf16
            const params = o.precision === 'bf16' && script === 'twins' && kind !== 'vlm_generate' ? { ...c.torch!.params, precision: 'bf16' } : c.torch!.params;
            if (!jobs.has(id)) jobs.set(id, { id, kind, params, ...(c.inner ? { inner: c.inner } : {}) });
          }
          // Memory (one extra call per job) where vlmix measures it too: the whole-model jobs.
          if (jobs.size) torchRuns.push(runTorch(found, script, [...jobs.values()], policy, threads, { keepBlasEnv: !!o.keepBlasEnv, memory: script !== 'kernels', device: o.torchDevice, tf32: o.tf32, log }));
        }
        const errs = torchRuns.filter((r) => r.error).map((r) => r.error!);
        const blas = torchRuns.find((r) => r.blas)?.blas;
        const blasEnv = o.keepBlasEnv ? 'kept' : 'unset';
        const blasNote = blas
          ? blas.openblas ? `OpenBLAS core ${blas.corename}, ${blas.threads} threads (${blas.config})` : `not OpenBLAS: ${blas.config}; ${blas.library ?? 'no BLAS library found'}`
          : 'BLAS unknown';
        torchInfo = {
          used: true, python: found.python, threads: torchRuns[0]?.threads ?? threads, blasEnv, ...(blas ? { blas } : {}),
          note: `PyTorch ${found.torch} (python ${found.pythonVersion}) at ${found.python}, ${o.torchDevice === 'cuda' ? `on CUDA (${o.tf32 ? 'TF32' : 'strict FP32'} matmuls; attention = scaled_dot_product_attention), ` : ''}torch.set_num_threads(${threads}); ${blasNote}; ${o.precision === 'bf16' ? 'twins\' forward and train step under torch.autocast(cpu, bfloat16); ' : ''}` +
            `OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE ${blasEnv === 'kept' ? 'kept as set (--keep-blas-env)' : 'unset for the torch process'}${errs.length ? `; errors: ${errs.join('; ')}` : ''}`,
        };
        notes.push(...errs);
        if (blas && !blas.openblas) notes.push(`PyTorch runs without OpenBLAS (${blas.config}): its matmuls use ${blas.library ?? 'an unknown BLAS'}, so it is not a fair anchor; install OpenBLAS (Debian: libopenblas0-pthread)`);
      }
    } else if (o.torch === 'auto') {
      torchInfo = { used: false, python: null, threads: null, note: 'no benchmark in this run has a PyTorch reference' };
    }

    // Attach PyTorch results, ratios and verdicts.
    const byName = new Map(cases.map((c) => [c.name, c]));
    const torchCache = new Map<string, BenchResult['torch'] | { error: string }>();
    for (const r of results) {
      const c = byName.get(r.name)!;
      if (!c.torch || !torchRuns.length) continue;
      const id = jobId(c);
      if (!torchCache.has(id)) {
        const tr = torchRuns.map((run) => ({ run, res: run.results.get(id) })).find((x) => x.res);
        if (!tr?.res) continue;
        if (tr.res.error || !tr.res.samples_ms?.length) torchCache.set(id, { error: tr.res.error ?? 'no samples' });
        else {
          const s = summarize(tr.res.samples_ms.map((ms) => toUnit(ms, c.unit, c.perCall)));
          torchCache.set(id, { ...s, inner: tr.res.inner ?? 1, threads: tr.run.threads, ...(tr.res.memory ? { memory: tr.res.memory } : {}) });
        }
      }
      const t = torchCache.get(id)!;
      if ('error' in t) {
        r.extra = { ...r.extra, torchError: t.error };
        continue;
      }
      r.torch = t;
    }
    const fits = compareAndFit(results, backends.map((b) => b.name));

    const res: ResultsFile = {
      schema: 'vlmix-bench/1',
      date: started.toISOString(),
      command: o.command ?? `pnpm bench ${process.argv.slice(2).join(' ')}`.trim(),
      machine: machineInfo(o.machine),
      versions: { node: process.versions.node, tfjs: tf.version.tfjs, torch: torchVersion, python: pythonVersion },
      backends,
      policy: { size: o.size, ...policy, threads },
      torch: torchInfo,
      ratioMeaning: RATIO_MEANING,
      load: { start: loadStart, end: os.loadavg() },
      notes,
      benchmarks: results,
      fits,
    };

    const dir = resolve(o.out ?? defaultOutDir(started));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'results.json'), `${JSON.stringify(res, jsonSafe, 2)}\n`);
    writeReport(res, dir);
    if (o.json) {
      mkdirSync(dirname(resolve(o.json)), { recursive: true });
      writeFileSync(resolve(o.json), `${JSON.stringify(res, jsonSafe, 2)}\n`);
    }
    if (tf.getBackend() !== before && before) {
      try {
        await tf.setBackend(before);
      } catch {
        /* leave it */
      }
    }
    log(`results: ${dir}`);
    return { results: res, dir };
  } finally {
    if (twinDir) rmSync(twinDir, { recursive: true, force: true });
  }
}

/** NaN/Infinity become null in JSON. */
export function jsonSafe(_k: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? null : v;
}

/**
 * Sets each result's ratio and verdict against PyTorch (when r.torch is set) and against the first backend,
 * and fits the scaling curves (per backend and for PyTorch). Shared by a run and by the --processes aggregate.
 */
export function compareAndFit(results: BenchResult[], backends: string[]): Fit[] {
  for (const r of results) {
    if (!r.torch || r.error || !Number.isFinite(r.median)) continue;
    r.ratio = lowerIsBetter(r.unit) ? r.median / r.torch.median : r.torch.median / r.median;
    r.verdictVsTorch = compare(r, r.torch, lowerIsBetter(r.unit));
  }
  if (backends.length > 1) {
    const first = backends[0]!;
    for (const r of results) {
      if (r.backend === first || r.error) continue;
      const f = results.find((x) => x.backend === first && x.name === r.name && !x.error);
      if (!f) continue;
      r.vsFirstBackend = {
        backend: first,
        ratio: lowerIsBetter(r.unit) ? r.median / f.median : f.median / r.median,
        verdict: compare(r, f, lowerIsBetter(r.unit)),
      };
    }
  }
  // Power-law fits of the scaling curves (per backend and for PyTorch).
  const fits: Fit[] = [];
  const fitOrder = (f: Fit) => `${f.series}\u0000${f.backend === 'pytorch' ? '\uffff' : String(backends.indexOf(f.backend)).padStart(3, '0')}`;
  const curves = new Map<string, BenchResult[]>();
  for (const r of results) if (r.curve && !r.error) curves.set(`${r.curve.series}\u0000${r.backend}`, [...(curves.get(`${r.curve.series}\u0000${r.backend}`) ?? []), r]);
  for (const [key, rs] of curves) {
    const [series, backend] = key.split('\u0000') as [string, string];
    const add = (who: string, pts: { x: number; y: number }[]) => {
      if (pts.length < 2) return;
      try {
        const f = fitPowerLaw(pts.map((p) => p.x), pts.map((p) => p.y));
        fits.push({ suite: 'scaling', series, backend: who, xLabel: rs[0]!.curve!.xLabel, ...f });
      } catch {
        /* degenerate */
      }
    };
    add(backend, rs.map((r) => ({ x: r.curve!.x, y: r.median })));
    if (backend === backends[0]) add('pytorch', rs.filter((r) => r.torch).map((r) => ({ x: r.curve!.x, y: r.torch!.median })));
  }
  fits.sort((a, b) => (fitOrder(a) < fitOrder(b) ? -1 : fitOrder(a) > fitOrder(b) ? 1 : 0));
  return fits;
}

