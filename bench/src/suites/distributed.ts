/**
 * `pnpm bench distributed`: the scaling row of @vlmix/distributed. Starts jobs with mpirun (each rank
 * runs bench/src/distributed-worker.ts) and writes results.json + report.md:
 *   - all-reduce time and bandwidth for a few float32 sizes, deterministic (alltoallv + sum in rank
 *     order + allgatherv) and the library's MPI_Allreduce, 2 processes;
 *   - data-parallel training step time and tokens/s of a preset at a fixed global batch, 1 process
 *     (no mpirun) vs N processes, with the communication time per step.
 * Options: --np N (default 2) --size quick|full --repeats R --out DIR
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distributedInfo, findMpirun, mpirunEnv } from '@vlmix/distributed';
import { machineInfo } from '../machine.js';
import { fmt, summarize, type Summary } from '../stats.js';

const BENCH = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REPO = resolve(BENCH, '..');
const WORKER = join(BENCH, 'src', 'distributed-worker.ts');

export const DISTRIBUTED_HELP = `Usage: pnpm bench distributed [--np N] [--size quick|full] [--repeats R] [--out DIR]

All-reduce bandwidth and 1-vs-N-process training step time over MPI (needs mpirun and the
@vlmix/distributed addon). Writes results.json and report.md (default bench/out/<timestamp>-distributed).
`;

interface Options {
  np: number;
  size: 'quick' | 'full';
  repeats: number;
  out?: string;
}

function parse(argv: string[]): Options | string {
  const o: Options = { np: 2, size: 'quick', repeats: 10 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    if (a === '--help' || a === '-h') return DISTRIBUTED_HELP;
    if (v === undefined) return `${a}: missing value`;
    i++;
    if (a === '--np' || a === '--repeats') {
      if (!/^\d+$/.test(v) || Number(v) < (a === '--np' ? 2 : 1)) return `${a}: expected an integer >= ${a === '--np' ? 2 : 1}, got '${v}'`;
      if (a === '--np') o.np = Number(v);
      else o.repeats = Number(v);
    } else if (a === '--size') {
      if (v !== 'quick' && v !== 'full') return `--size: unknown value '${v}'; allowed: quick, full`;
      o.size = v;
    } else if (a === '--out') o.out = v;
    else return `unknown option '${a}'; options: --np, --size, --repeats, --out, --help`;
  }
  return o;
}

function job(np: number | null, args: string[], log: (s: string) => void): Record<string, any> {
  const out = join(mkdtempSync(join(os.tmpdir(), 'vlmix-bench-dist-')), 'r.json');
  const node = [process.execPath, '--conditions=@vlmix/source', '--import', 'tsx', WORKER, ...args, '--out', out];
  const [cmd, ...rest] = np === null ? node : [findMpirun()!, '-np', String(np), '--oversubscribe', ...node];
  log(`  ${np === null ? '1 process' : `mpirun -np ${np}`}: ${args.join(' ')}`);
  const r = spawnSync(cmd!, rest, { cwd: REPO, env: mpirunEnv(), encoding: 'utf8', timeout: 30 * 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} exited with ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}`);
  return JSON.parse(readFileSync(out, 'utf8'));
}

interface Row extends Summary {
  name: string;
  unit: 'ms';
  params: Record<string, unknown>;
  extra: Record<string, number | string>;
}

export async function runDistributedBench(argv: string[], log = (s: string) => process.stdout.write(`${s}\n`)): Promise<number> {
  const o = parse(argv);
  if (typeof o === 'string') {
    (o === DISTRIBUTED_HELP ? process.stdout : process.stderr).write(o === DISTRIBUTED_HELP ? o : `bench distributed: ${o}\n`);
    return o === DISTRIBUTED_HELP ? 0 : 2;
  }
  const info = distributedInfo();
  const mpirun = findMpirun();
  if (!info.available || !mpirun) {
    process.stderr.write(`bench distributed: cannot run: ${!info.available ? info.reason : 'mpirun not found on PATH (or VLMIX_MPIRUN)'}\n`);
    return 1;
  }
  const started = new Date();
  const loadStart = os.loadavg();
  const sizes = o.size === 'quick' ? [1024, 65536, 1 << 20, 4 << 20] : [1024, 65536, 1 << 20, 4 << 20, 16 << 20];
  const train = o.size === 'quick'
    ? [{ preset: 'gpt2-tiny', batch: 16, seq: 64 }]
    : [{ preset: 'gpt2-tiny', batch: 32, seq: 128 }, { preset: 'llama-tiny', batch: 32, seq: 128 }];
  const rows: Row[] = [];
  let library = '';

  log(`all-reduce, ${o.np} processes`);
  const ar = job(o.np, ['--mode', 'allreduce', '--sizes', sizes.join(','), '--repeats', String(o.repeats), '--warmup', '3'], log);
  library = ar.library;
  for (const r of ar.rows as { n: number; deterministic: boolean; ms: number[] }[]) {
    const s = summarize(r.ms);
    const bytes = r.n * 4;
    // nccl-tests' definitions: algorithm bandwidth = bytes / time; bus bandwidth = algbw * 2(N-1)/N.
    const algbw = bytes / (s.median / 1000) / 1e9;
    rows.push({
      name: `allreduce ${r.n} floats (${r.deterministic ? 'deterministic' : 'MPI_Allreduce'}), ${o.np} processes`, unit: 'ms', ...s,
      params: { n: r.n, bytes, algorithm: r.deterministic ? 'deterministic' : 'library', np: o.np },
      extra: { algbwGBs: algbw, busbwGBs: (algbw * 2 * (o.np - 1)) / o.np },
    });
  }
  for (const t of train) {
    const args = ['--mode', 'train', '--preset', t.preset, '--batch', String(t.batch), '--seq', String(t.seq), '--steps', String(o.repeats), '--warmup', '3'];
    log(`train ${t.preset}, global batch ${t.batch} x ${t.seq}`);
    for (const np of [null, o.np]) {
      const r = job(np, args, log);
      const s = summarize(r.stepMs);
      const procs = np ?? 1;
      rows.push({
        name: `train ${t.preset} b${t.batch}x${t.seq}, ${procs} process${procs > 1 ? 'es' : ''}`, unit: 'ms', ...s,
        params: { ...t, np: procs },
        extra: { tokensPerSec: r.tokens / (s.median / 1000), commMsMedian: summarize(r.commMs).median, waitMsMedian: summarize(r.waitMs).median, gradBytes: r.gradBytes, threadsPerRank: r.threadsPerRank, backend: r.backend },
      });
    }
  }

  const res = {
    schema: 'vlmix-bench-distributed/1', date: started.toISOString(), command: `pnpm bench distributed ${argv.join(' ')}`.trim(),
    machine: machineInfo(), versions: { node: process.versions.node, mpi: library }, np: o.np, repeats: o.repeats,
    load: { start: loadStart, end: os.loadavg() }, rows,
  };
  const dir = resolve(o.out ?? join(BENCH, 'out', `${started.toISOString().replace(/[:]/g, '-').replace(/\..+$/, '')}-distributed`));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'results.json'), `${JSON.stringify(res, null, 2)}\n`);
  writeFileSync(join(dir, 'report.md'), report(res));
  log(`results: ${dir}`);
  return 0;
}

function report(res: { date: string; machine: ReturnType<typeof machineInfo>; versions: { node: string; mpi: string }; np: number; load: { start: number[]; end: number[] }; rows: Row[] }): string {
  const L = [`# vlmix distributed benchmark — ${res.date.slice(0, 10)}`, ''];
  L.push(`- **Machine**: ${res.machine.label}`, `- ${res.versions.mpi}, Node ${res.versions.node}; load average ${res.load.start.map(fmt).join(' / ')} before, ${res.load.end.map(fmt).join(' / ')} after`, '');
  L.push('## All-reduce (float32, sum)', '', '| elements | algorithm | time ms (p25–p75) | algbw GB/s | busbw GB/s |', '|---:|---|---|---:|---:|');
  for (const r of res.rows.filter((x) => x.name.startsWith('allreduce'))) {
    L.push(`| ${r.params.n} | ${r.params.algorithm} | ${fmt(r.median)} (${fmt(r.spread.p25)}–${fmt(r.spread.p75)}) | ${fmt(r.extra.algbwGBs as number)} | ${fmt(r.extra.busbwGBs as number)} |`);
  }
  L.push('', 'A sample is the slowest rank\'s time for one call started after a barrier; bus bandwidth = algbw × 2(N−1)/N (nccl-tests).', '');
  L.push('## Training step, fixed global batch', '', '| model | global batch | processes | threads / process | step ms (p25–p75) | tokens/s | wait for slowest rank ms / step | all-reduce + loss mean ms / step | gradient MB |', '|---|---|---:|---:|---|---:|---:|---:|---:|');
  for (const r of res.rows.filter((x) => x.name.startsWith('train'))) {
    const p = r.params as { preset: string; batch: number; seq: number; np: number };
    L.push(`| ${p.preset} | ${p.batch}×${p.seq} | ${p.np} | ${r.extra.threadsPerRank} | ${fmt(r.median)} (${fmt(r.spread.p25)}–${fmt(r.spread.p75)}) | ${fmt(r.extra.tokensPerSec as number)} | ${fmt(r.extra.waitMsMedian as number)} | ${fmt(r.extra.commMsMedian as number)} | ${fmt((r.extra.gradBytes as number) / 2 ** 20)} |`);
  }
  L.push('', 'Medians per step (the slowest rank\'s). One process runs without mpirun (its gradient all-reduce is a clone, its barrier a no-op); ' +
    'under mpirun each rank is bound to a core by Open MPI\'s default policy.', '');
  return L.join('\n');
}
