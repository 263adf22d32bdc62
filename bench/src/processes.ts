/**
 * `--processes N`: the same bench in N fresh processes, one after another, and their aggregate. Within one
 * process the samples of a benchmark are often tight while another process of the same command lands
 * elsewhere (the scheduler's placement of the pool's threads, other load): only fresh processes show that.
 * The aggregate's median is the median of the processes' medians and its spread (p25, p75, min, max) is
 * across those medians, for vlmix and PyTorch alike, so the "no difference" rule compares run-to-run ranges.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { compareAndFit, jsonSafe } from './run.js';
import { writeReport } from './report.js';
import { median, summarize } from './stats.js';
import type { BenchResult, ResultsFile, TorchResult } from './types.js';

/** The command line without --processes, --out and --json (each child gets its own --out). */
export function childArgs(argv: readonly string[]): string[] {
  const drop = new Set(['--processes', '--out', '--json']);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.startsWith('--') && a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (drop.has(name)) {
      if (name === a) i++; // '--x value'
      continue;
    }
    out.push(a);
  }
  return out;
}

function iqrRel(r: { median: number; spread: { p25: number; p75: number } }): number {
  return (r.spread.p75 - r.spread.p25) / r.median;
}

/** Median and spread across processes, plus the per-process medians. */
function across<T extends { median: number; spread: { p25: number; p75: number } }>(rs: T[]) {
  const medians = rs.map((r) => r.median);
  return { ...summarize(medians), acrossProcesses: { medians, withinRunIqrRel: median(rs.map(iqrRel)) } };
}

/** Aggregates the results of N processes of the same bench (same benchmarks) into one results file. */
export function aggregate(runs: ResultsFile[], o: { command: string; dirs: string[] }): ResultsFile {
  if (runs.length === 0) throw new Error('aggregate: no process results');
  const first = runs[0]!;
  const key = (b: BenchResult) => `${b.backend}\u0000${b.name}`;
  const benchmarks: BenchResult[] = first.benchmarks.map((b0) => {
    const all = runs.map((r) => r.benchmarks.find((b) => key(b) === key(b0)));
    const ok = all.filter((b): b is BenchResult => !!b && !b.error && Number.isFinite(b.median));
    const { ratio: _r, verdictVsTorch: _v, vsFirstBackend: _f, torch: _t, ...base } = b0;
    if (ok.length === 0) return { ...base, error: b0.error ?? `failed in every process` };
    const agg: BenchResult = { ...base, ...across(ok), inner: ok[0]!.inner, extra: ok[0]!.extra };
    delete agg.error;
    if (ok.length < runs.length) agg.extra = { ...agg.extra, failedInProcesses: runs.length - ok.length };
    const torch = ok.map((b) => b.torch).filter((t): t is TorchResult => !!t);
    if (torch.length) {
      agg.torch = { ...across(torch), inner: torch[0]!.inner, threads: torch[0]!.threads, ...(torch[0]!.memory ? { memory: torch[0]!.memory } : {}) };
    }
    return agg;
  });
  const fits = compareAndFit(benchmarks, first.backends.map((b) => b.name));
  const last = runs[runs.length - 1]!;
  return {
    ...first,
    command: o.command,
    load: { start: first.load.start, end: last.load.end },
    notes: [...new Set(runs.flatMap((r) => r.notes))],
    benchmarks,
    fits,
    processes: { count: runs.length, dirs: o.dirs },
  };
}

/**
 * Runs this bench command (argv without --processes/--out/--json) in `n` fresh processes, each writing its
 * own results under <out>/process-<i>, then writes the aggregate into <out>.
 */
export function runProcesses(n: number, argv: readonly string[], out: string, json: string | undefined,
  log: (s: string) => void = (s) => process.stdout.write(`${s}\n`)): { results: ResultsFile; dir: string } {
  const dir = resolve(out);
  const args = childArgs(argv);
  const runs: ResultsFile[] = [];
  const dirs: string[] = [];
  for (let i = 1; i <= n; i++) {
    const d = join(dir, `process-${i}`);
    log(`== process ${i} of ${n}: ${d}`);
    const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...args, '--out', d], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`bench process ${i} of ${n} failed (exit ${r.status ?? r.signal})`);
    runs.push(JSON.parse(readFileSync(join(d, 'results.json'), 'utf8')) as ResultsFile);
    dirs.push(`process-${i}`);
  }
  const res = aggregate(runs, { command: `pnpm bench ${argv.join(' ')}`.trim(), dirs });
  mkdirSync(dir, { recursive: true });
  const text = `${JSON.stringify(res, jsonSafe, 2)}\n`;
  writeFileSync(join(dir, 'results.json'), text);
  writeReport(res, dir);
  if (json) {
    mkdirSync(dirname(resolve(json)), { recursive: true });
    writeFileSync(resolve(json), text);
  }
  log(`results (${n} processes): ${dir}`);
  return { results: res, dir };
}
