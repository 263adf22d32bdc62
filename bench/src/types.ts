/** Shared types of the benchmark harness. */
import type { SuiteName } from './args.js';
import type { Spread } from './stats.js';

/** ms: milliseconds per call; us/op: microseconds per op; tokens/s: throughput (higher is better). */
export type Unit = 'ms' | 'us/op' | 'tokens/s';

export interface Prepared {
  /** One call of the measured work, synchronised (dataSync / awaited) before it returns. */
  run(): void;
  dispose(): void;
}

/** A job for bench/reference/<script>.py: same shapes, run in PyTorch. */
export interface TorchJob {
  script: 'kernels' | 'models';
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
  policy: { size: string; warmup: number; repeats: number; minSampleMs: number; maxInner: number; maxCaseMs: number; threads: number };
  torch: { used: boolean; python: string | null; threads: number | null; note: string };
  ratioMeaning: string;
  /** os.loadavg() before and after the run: other work on the machine shows up here. */
  load: { start: number[]; end: number[] };
  notes: string[];
  benchmarks: BenchResult[];
  fits: Fit[];
}
