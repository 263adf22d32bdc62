/** Shared types of the benchmark harness. */
import type { SuiteName } from './args.js';
import type { Spread } from './stats.js';
import type { TorchBlas, TorchScript } from './torch.js';

/** ms: milliseconds per call; us/op: microseconds per op; tokens/s: throughput (higher is better). */
export type Unit = 'ms' | 'us/op' | 'tokens/s';

export interface Prepared {
  /** One call of the measured work, synchronised (dataSync / awaited) before it returns. */
  run(): void;
  dispose(): void;
}

/** A job for bench/reference/<script>.py: same shapes, run in PyTorch. */
export interface TorchJob {
  script: TorchScript;
  kind: string;
  params: Record<string, unknown>;
}

export interface BenchCase {
  suite: SuiteName;
  /** Table / chart group, e.g. 'matmul' or 'gpt2-tiny'. */
  group: string;
  /** Unique name, e.g. 'matmul 256x256x256'. */
  name: string;
  params: Record<string, unknown>;
  unit: Unit;
  /** Ops (us/op) or tokens (tokens/s) done by one call; default 1. */
  perCall?: number;
  /** Fixed calls per sample (skips calibration). */
  inner?: number;
  torch?: TorchJob;
  /** Scaling curves: the series this point belongs to and its x. */
  curve?: { series: string; x: number; xLabel: string };
  setup(): Prepared;
  /** Measured once after timing, outside the timed region (memory, fallback kernels). */
  extra?(p: Prepared): Record<string, unknown> | Promise<Record<string, unknown>>;
}

export interface TorchResult {
  median: number;
  spread: Spread;
  n: number;
  inner: number;
  threads: number;
  /** One extra call after timing: peak RSS rise and allocator peak (profiler memory events), bytes. */
  memory?: { rssPeakDeltaBytes: number | null; allocPeakDeltaBytes: number | null };
  acrossProcesses?: AcrossProcesses;
}

/** With --processes N: the benchmark's median in each fresh process (median/spread are then across them). */
export interface AcrossProcesses {
  medians: number[];
  /** Median over the processes of each one's within-run (p75 - p25) / median. */
  withinRunIqrRel: number;
}

export interface BenchResult {
  suite: SuiteName;
  group: string;
  name: string;
  backend: string;
  params: Record<string, unknown>;
  unit: Unit;
  median: number;
  spread: Spread;
  n: number;
  /** Calls per timed sample (calibrated). */
  inner: number;
  curve?: BenchCase['curve'];
  extra?: Record<string, unknown>;
  torch?: TorchResult;
  /** vlmix time / PyTorch time (> 1: vlmix slower); for tokens/s, PyTorch tokens/s / vlmix tokens/s. */
  ratio?: number;
  /** Versus PyTorch by the "no difference" rule (see README). */
  verdictVsTorch?: 'no difference' | 'faster' | 'slower';
  /** Versus the same benchmark on the first backend (when several run side by side). */
  vsFirstBackend?: { backend: string; ratio: number; verdict: 'no difference' | 'faster' | 'slower' };
  /** Skipped or failed: why. */
  error?: string;
  acrossProcesses?: AcrossProcesses;
}

export interface Fit {
  suite: SuiteName;
  series: string;
  backend: string;
  xLabel: string;
  exponent: number;
  coefficient: number;
  r2: number;
  n: number;
}

export interface ResultsFile {
  schema: 'vlmix-bench/1';
  date: string;
  command: string;
  machine: {
    label: string;
    cpuModel: string;
    cpuFamily: number | null;
    cores: number;
    memoryGiB: number;
    flags: string[];
    hypervisor: boolean;
    os: string;
  };
  versions: { node: string; tfjs: string; torch: string | null; python: string | null };
  backends: { name: string; reason: string; threads: number; info?: Record<string, unknown> }[];
  policy: { size: string; warmup: number; minWarmupMs?: number; repeats: number; minSampleMs: number; maxInner: number; maxCaseMs: number; threads: number };
  torch: {
    used: boolean; python: string | null; threads: number | null; note: string;
    /** 'unset': OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed for the torch process (default); 'kept': --keep-blas-env. */
    blasEnv?: 'unset' | 'kept';
    /** The BLAS the torch process loaded and the core OpenBLAS picked. */
    blas?: TorchBlas;
  };
  ratioMeaning: string;
  /** os.loadavg() before and after the run: other work on the machine shows up here. */
  load: { start: number[]; end: number[] };
  notes: string[];
  benchmarks: BenchResult[];
  fits: Fit[];
  /** --processes N: the suite ran in N fresh processes (their results under these dirs); medians and spreads
   *  of `benchmarks` are across the processes' medians. */
  processes?: { count: number; dirs: string[] };
}
