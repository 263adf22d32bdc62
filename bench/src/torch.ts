/** Finds a python with torch and runs bench/reference/*.py on JSON job specs (stdin -> stdout), in a fair environment. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TimerPolicy } from './timer.js';

// VLMIX_BENCH_REFERENCE_DIR: where a bundled bench (bench/device) finds the scripts.
export const REFERENCE_DIR = process.env.VLMIX_BENCH_REFERENCE_DIR || join(dirname(fileURLToPath(import.meta.url)), '..', 'reference');

export interface TorchPython {
  python: string;
  torch: string;
  pythonVersion: string;
}

/** Candidates in order: $VLMIX_TORCH_PYTHON, /usr/bin/python3 (Debian's python3-torch), python3 on PATH. */
export function findTorchPython(env: NodeJS.ProcessEnv = process.env): { found: TorchPython | null; tried: string[] } {
  const candidates = [env.VLMIX_TORCH_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => !!c);
  const tried: string[] = [];
  for (const py of [...new Set(candidates)]) {
    if (py.includes('/') && !existsSync(py)) {
      tried.push(`${py}: not found`);
      continue;
    }
    const r = spawnSync(py, ['-c', 'import json, sys, torch; print(json.dumps({"torch": torch.__version__, "python": sys.version.split()[0]}))'], {
      encoding: 'utf8', timeout: 120_000,
    });
    if (r.status === 0) {
      try {
        const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { torch: string; python: string };
        return { found: { python: py, torch: j.torch, pythonVersion: j.python }, tried };
      } catch {
        /* fall through */
      }
    }
    const why = r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop() || `exit ${r.status}`;
    tried.push(`${py}: ${why}`);
  }
  return { found: null, tried };
}

export interface TorchJobSpec {
  id: string;
  kind: string;
  params: Record<string, unknown>;
  /** Calls per sample fixed by the case (else calibrated like vlmix). */
  inner?: number;
}

export interface TorchJobResult {
  id: string;
  samples_ms?: number[];
  inner?: number;
  /** One extra call outside timing (common.py memory()). */
  memory?: { rssPeakDeltaBytes: number | null; allocPeakDeltaBytes: number | null };
  error?: string;
}

/** What common.py found about the BLAS of the torch process (the anchor's matmuls). */
export interface TorchBlas {
  library: string | null;
  openblas: boolean;
  corename: string | null;
  threads: number | null;
  config: string;
  /** OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS as the torch process saw them. */
  env: Record<string, string | null>;
}

export interface TorchRun {
  results: Map<string, TorchJobResult>;
  threads: number;
  torch: string;
  blas?: TorchBlas;
  error?: string;
}

export type TorchScript = 'kernels' | 'models' | 'twins';

/** Variables that pin OpenBLAS's kernels or cache model (set machine-wide on some machines). */
export const BLAS_PIN_VARS = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] as const;

/**
 * The torch process's environment: same thread count as vlmix for OpenMP, MKL and OpenBLAS, and, unless
 * keepBlasEnv, without the OpenBLAS pinning variables, so OpenBLAS picks its kernels for this CPU (a fair anchor).
 */
export function torchEnv(threads: number, keepBlasEnv: boolean, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  // PYTHONDONTWRITEBYTECODE: no __pycache__ left in bench/reference by a run.
  const out: NodeJS.ProcessEnv = { ...env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), PYTHONDONTWRITEBYTECODE: '1' };
  if (!keepBlasEnv) for (const k of BLAS_PIN_VARS) delete out[k];
  return out;
}

export interface RunTorchOptions {
  keepBlasEnv?: boolean;
  /** Base environment of the torch process (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Also measure memory per job (one extra call each). */
  memory?: boolean;
  /** 'cuda': the jobs run on the GPU (common.py), each call timed until the GPU is done. */
  device?: 'cpu' | 'cuda';
  /** TF32 matmuls on CUDA. */
  tf32?: boolean;
  log?: (s: string) => void;
}

/** Runs one reference script on all its jobs in one python process. */
export function runTorch(py: TorchPython, script: TorchScript, jobs: TorchJobSpec[], policy: TimerPolicy,
  threads: number, o: RunTorchOptions = {}): TorchRun {
  const spec = {
    threads, memory: !!o.memory, jobs, device: o.device ?? 'cpu', tf32: !!o.tf32,
    policy: { warmup: policy.warmup, min_warmup_ms: policy.minWarmupMs ?? 0, repeats: policy.repeats, min_sample_ms: policy.minSampleMs, max_inner: policy.maxInner, max_case_ms: policy.maxCaseMs },
  };
  const path = join(REFERENCE_DIR, `${script}.py`);
  o.log?.(`  torch: ${script}.py, ${jobs.length} jobs, ${o.device === 'cuda' ? `cuda${o.tf32 ? ' (tf32)' : ''}` : `${threads} threads`}`);
  const r = spawnSync(py.python, [path], {
    input: JSON.stringify(spec),
    encoding: 'utf8',
    timeout: 60 * 60_000,
    maxBuffer: 64 * 2 ** 20,
    env: torchEnv(threads, !!o.keepBlasEnv, o.env),
  });
  const results = new Map<string, TorchJobResult>();
  if (r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || '').trim().split('\n').slice(-5).join(' | ');
    return { results, threads, torch: py.torch, error: `${script}.py failed (exit ${r.status}): ${why}` };
  }
  try {
    const out = JSON.parse(r.stdout) as { threads: number; torch: string; blas?: TorchBlas; results: TorchJobResult[] };
    for (const j of out.results) results.set(j.id, j);
    return { results, threads: out.threads, torch: out.torch, ...(out.blas ? { blas: out.blas } : {}) };
  } catch (e) {
    return { results, threads, torch: py.torch, error: `${script}.py printed invalid JSON: ${(e as Error).message}` };
  }
}
