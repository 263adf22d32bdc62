/** Command-line options of `pnpm bench`. Pure: throws ArgError with a message naming the bad value. */

export const SUITES = ['kernels', 'arch', 'scaling', 'small'] as const;
/** What runs without --suite ('small' is opt-in: minutes of 20-60 M-parameter steps). */
export const DEFAULT_SUITES: readonly SuiteName[] = ['kernels', 'arch', 'scaling'];
export type SuiteName = (typeof SUITES)[number];
export const BACKENDS = ['auto', 'vlmix-cpu', 'vlmix-cuda', 'cpu', 'wasm', 'tensorflow'] as const;
export type BackendName = (typeof BACKENDS)[number];
export const SIZES = ['quick', 'full'] as const;
export type SizeName = (typeof SIZES)[number];
export const TORCH_MODES = ['auto', 'off'] as const;
export type TorchMode = (typeof TORCH_MODES)[number];
export const PRECISIONS = ['fp32', 'bf16'] as const;
export type PrecisionName = (typeof PRECISIONS)[number];
export const TORCH_DEVICES = ['cpu', 'cuda'] as const;
export type TorchDevice = (typeof TORCH_DEVICES)[number];

export interface BenchOptions {
  backends: BackendName[];
  suites: SuiteName[];
  size: SizeName;
  /** Timed samples per benchmark; undefined = the size's default. */
  repeats?: number;
  /** Warm-up calls; undefined = the size's default. */
  warmup?: number;
  json?: string;
  out?: string;
  torch: TorchMode;
  /** Threads for PyTorch and the native backend (VLMIX_NUM_THREADS); undefined = native's count or all cores. */
  threads?: number;
  /** Only benchmarks whose name contains one of these substrings. */
  filter?: string[];
  /** Human label of the machine stored in results.json (default: derived from /proc/cpuinfo). */
  machine?: string;
  /** Keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for the torch process (default false: unset, see torch.ts torchEnv). */
  keepBlasEnv?: boolean;
  /** Run the whole selection in this many fresh processes and report the spread of their medians (default 1). */
  processes?: number;
  /** Where PyTorch runs its side: 'cpu' (default) or 'cuda' (the GPU run; attention is then compared with scaled_dot_product_attention). */
  torchDevice?: TorchDevice;
  /** TF32 tensor-core matmuls for PyTorch on CUDA (vlmix-cuda's own switch is VLMIX_TF32). */
  tf32?: boolean;
  /** Matmul precision: bf16 = vlmix-cpu's bf16 matmuls, and PyTorch's CPU autocast to bf16 for its twins. */
  precision?: PrecisionName;
  help: boolean;
}

export class ArgError extends Error {
  override name = 'ArgError';
}

export const HELP = `Usage: pnpm bench [options]

Runs vlmix's benchmarks and writes results.json, report.md and SVG charts.

Options:
  --backend a,b        backends to run side by side: ${BACKENDS.join(', ')}
                       (default: auto = what useBackend('auto') picks, vlmix-cpu when built)
  --suite a,b          suites: ${SUITES.join(', ')} (default: ${DEFAULT_SUITES.join(",")}; small: the *-small presets vs their PyTorch twins)
  --size quick|full    problem sizes (default: quick, a few minutes on 2 cores)
  --repeats N          timed samples per benchmark (default: quick 5, full 10)
  --warmup N           warm-up calls before timing, >= 1 (default: 2)
  --threads N          threads for PyTorch and vlmix-cpu (default: vlmix-cpu's count, else all cores)
  --filter s1,s2       only benchmarks whose name contains one of the substrings
  --machine LABEL      name of the machine for the report (default: derived from /proc/cpuinfo;
                       env VLMIX_BENCH_MACHINE)
  --json FILE          also write the machine-readable results to FILE
  --out DIR            results directory (default: bench/out/<timestamp>)
  --torch auto|off     run the same shapes in PyTorch when a python with torch is found (default: auto;
                       probes $VLMIX_TORCH_PYTHON, /usr/bin/python3, python3)
  --keep-blas-env      keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for the torch process (default: unset them,
                       so OpenBLAS picks its kernels for this CPU; the core it used is in the report)
  --torch-device D     where PyTorch runs: cpu or cuda (default cpu; with cuda, attention is compared with
                       torch's scaled_dot_product_attention and timings wait for the GPU)
  --tf32               TF32 matmuls for PyTorch on CUDA (default strict FP32; vlmix-cuda: env VLMIX_TF32)
  --precision P        fp32 (default) | bf16: vlmix-cpu's bf16 matmuls (AVX512-BF16) against PyTorch's CPU
                       autocast to bf16 for the twins' forward and train step (arch, small suites)
  --processes N        run everything in N fresh processes, one after another, and report the median and
                       the run-to-run spread of their medians (default 1: this process only)
  --help               this text
`;

function list<T extends string>(opt: string, raw: string, allowed: readonly T[]): T[] {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new ArgError(`${opt}: expected one or more of ${allowed.join(', ')}, got an empty value`);
  for (const it of items) {
    if (!allowed.includes(it as T)) {
      throw new ArgError(`${opt}: unknown value '${it}'; allowed: ${allowed.join(', ')}`);
    }
  }
  return [...new Set(items)] as T[];
}

function one<T extends string>(opt: string, raw: string, allowed: readonly T[]): T {
  if (!allowed.includes(raw as T)) throw new ArgError(`${opt}: unknown value '${raw}'; allowed: ${allowed.join(', ')}`);
  return raw as T;
}

function posInt(opt: string, raw: string, min = 1): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isInteger(n) || n < min) throw new ArgError(`${opt}: expected an integer >= ${min}, got '${raw}'`);
  return n;
}

const TAKES_VALUE = new Set(['--backend', '--suite', '--size', '--repeats', '--warmup', '--json', '--out', '--torch', '--threads', '--filter', '--machine', '--processes', '--torch-device', '--precision']);
const FLAGS = new Set(['--keep-blas-env', '--tf32']);

export function parseArgs(argv: readonly string[]): BenchOptions {
  const o: BenchOptions = { backends: ['auto'], suites: [...DEFAULT_SUITES], size: 'quick', torch: 'auto', help: false };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let v: string | undefined;
    if (a === '--') continue;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (a === '--help' || a === '-h') {
      o.help = true;
      continue;
    }
    if (FLAGS.has(a)) {
      if (v !== undefined) throw new ArgError(`${a}: takes no value, got '${v}'`);
      if (a === '--keep-blas-env') o.keepBlasEnv = true;
      if (a === '--tf32') o.tf32 = true;
      continue;
    }
    if (!TAKES_VALUE.has(a)) {
      throw new ArgError(`unknown option '${a}'; options: ${[...TAKES_VALUE, ...FLAGS].join(', ')}, --help`);
    }
    if (v === undefined) {
      v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new ArgError(`${a}: missing value`);
    }
    switch (a) {
      case '--backend': o.backends = list(a, v, BACKENDS); break;
      case '--suite': o.suites = list(a, v, SUITES); break;
      case '--size': o.size = one(a, v, SIZES); break;
      case '--repeats': o.repeats = posInt(a, v); break;
      case '--warmup': o.warmup = posInt(a, v, 1); break;
      case '--threads': o.threads = posInt(a, v); break;
      case '--processes': o.processes = posInt(a, v); break;
      case '--torch': o.torch = one(a, v, TORCH_MODES); break;
      case '--torch-device': o.torchDevice = one(a, v, TORCH_DEVICES); break;
      case '--precision': o.precision = one(a, v, PRECISIONS); break;
      case '--json': o.json = v; break;
      case '--out': o.out = v; break;
      case '--machine': o.machine = v; break;
      case '--filter': o.filter = v.split(',').map((s) => s.trim()).filter(Boolean); break;
    }
  }
  return o;
}
