/** report.md and the SVG charts from a results file. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt } from './stats.js';
import { barChart, logLogChart, type BarValue } from './svg.js';
import type { BenchResult, ResultsFile } from './types.js';

export function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

const MiB = 2 ** 20;

function cell(r: { median: number; spread: { p25: number; p75: number } } | undefined): string {
  if (!r || !Number.isFinite(r.median)) return '–';
  return `${fmt(r.median)} (${fmt(r.spread.p25)}–${fmt(r.spread.p75)})`;
}

function ratioCell(r: BenchResult | undefined): string {
  if (!r || r.ratio == null) return '–';
  return r.verdictVsTorch === 'no difference' ? `${fmt(r.ratio)} (no difference)` : `${fmt(r.ratio)}`;
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/** Writes report.md and *.svg into dir; returns the chart file names. */
export function writeReport(res: ResultsFile, dir: string): string[] {
  const charts: string[] = [];
  const backends = res.backends.map((b) => b.name);
  const hasTorch = res.benchmarks.some((b) => b.torch);
  const L: string[] = [];
  const m = res.machine;
  L.push(`# vlmix benchmarks — ${res.date.slice(0, 10)}`, '');
  L.push(`- **Machine**: ${m.label}`);
  L.push(`- CPU: ${m.cpuModel}${m.cpuFamily != null ? ` (family ${m.cpuFamily})` : ''}, ${m.cores} cores, ${m.memoryGiB} GiB, flags: ${m.flags.join(' ') || '–'}${m.hypervisor ? ', virtualised' : ''}; ${m.os}`);
  L.push(`- Node ${res.versions.node}, tfjs ${res.versions.tfjs}${res.versions.torch ? `, PyTorch ${res.versions.torch} (python ${res.versions.python})` : ''}`);
  L.push(`- Backends: ${res.backends.map((b) => `\`${b.name}\` (${b.threads} thread${b.threads === 1 ? '' : 's'}; ${b.reason})`).join('; ')}`);
  L.push(`- PyTorch: ${res.torch.note}`);
  L.push(`- Policy: size \`${res.policy.size}\`, ${res.policy.warmup} warm-up call(s)${res.policy.minWarmupMs ? ` and at least ${res.policy.minWarmupMs} ms of them (both sides)` : ''}, ${res.policy.repeats} samples of ≥ ${res.policy.minSampleMs} ms (calls per sample calibrated, at most ${res.policy.maxInner}; fewer samples, never below 3, when one benchmark would take over ${res.policy.maxCaseMs / 1000} s); median with p25–p75 in parentheses`);
  L.push(`- Load average (1/5/15 min) at start ${res.load.start.map((x) => x.toFixed(2)).join('/')}, at end ${res.load.end.map((x) => x.toFixed(2)).join('/')}`);
  L.push(`- Command: \`${res.command}\``);
  if (Math.max(res.load.start[0] ?? 0, res.load.end[0] ?? 0) > m.cores) {
    L.push('', `> **Busy machine**: the 1-minute load average (${res.load.start[0]!.toFixed(2)} at start, ${res.load.end[0]!.toFixed(2)} at end) exceeded the ${m.cores} cores, so other processes competed for the CPU during this run. Multi-threaded measurements (\`vlmix-cpu\`'s pool, PyTorch's OpenMP threads) suffer most; PyTorch samples with a wide p25–p75 range or a constant ~scheduler-slice time are contaminated. Compare within this run with care and prefer a run on an idle machine.`);
  }
  if (res.processes) {
    L.push('', `> **${res.processes.count} fresh processes** (${res.processes.dirs.join(', ')}): every value below is the median of the processes' medians, ` +
      `and the p25–p75 in parentheses is the spread of those medians from process to process (run-to-run), not within one run. ` +
      `"Run-to-run spread" at the end lists each process's median.`);
  }
  L.push('', `Ratio = ${res.ratioMeaning}. "no difference": the p25–p75 ranges overlap (bench/README.md).`, '');
  for (const n of res.notes) L.push(`> ${n}`);
  if (res.notes.length) L.push('');

  const suites = unique(res.benchmarks.map((b) => b.suite));
  const names = (rs: BenchResult[]) => unique(rs.map((r) => r.name));
  const get = (name: string, backend: string) => res.benchmarks.find((b) => b.name === name && b.backend === backend);

  const unitLabel = (unit: string) => `${unit}${unit === 'tokens/s' ? ' (higher is better)' : ' (lower is better)'}`;
  const seriesOf = (g: BenchResult[]) => [...backends, ...(g.some((r) => r.torch) ? ['PyTorch'] : [])];
  const barGroups = (ns: string[], strip: string) => ns.map((name) => {
    const values: BarValue[] = [];
    for (const b of backends) {
      const r = get(name, b);
      if (r && Number.isFinite(r.median)) values.push({ series: b, value: r.median, lo: r.spread.p25, hi: r.spread.p75 });
    }
    const t = backends.map((b) => get(name, b)?.torch).find(Boolean);
    if (t) values.push({ series: 'PyTorch', value: t.median, lo: t.spread.p25, hi: t.spread.p75 });
    return { label: strip && name.startsWith(`${strip} `) ? name.slice(strip.length + 1) : name, values };
  });
  const header = () => {
    const h = ['Benchmark', 'unit', ...backends.map((b) => `\`${b}\``)];
    if (hasTorch) h.push('PyTorch', ...backends.map((b) => `\`${b}\` / PyTorch`));
    if (backends.length > 1) h.push(...backends.slice(1).map((b) => `\`${b}\` / \`${backends[0]}\``));
    return [`| ${h.join(' | ')} |`, `|${h.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`];
  };
  const row = (name: string) => {
    const rs = backends.map((b) => get(name, b));
    const any = rs.find(Boolean)!;
    const c = [name, any.unit, ...rs.map((r) => (r?.error ? `failed: ${r.error}` : cell(r)))];
    if (hasTorch) {
      const t = rs.find((r) => r?.torch)?.torch;
      c.push(t ? cell(t) : '–', ...rs.map(ratioCell));
    }
    if (backends.length > 1) {
      c.push(...rs.slice(1).map((r) => (r?.vsFirstBackend ? `${fmt(r.vsFirstBackend.ratio)}${r.vsFirstBackend.verdict === 'no difference' ? ' (no difference)' : ''}` : '–')));
    }
    return `| ${c.map((x) => x.replace(/\|/g, '\\|')).join(' | ')} |`;
  };

  const allocRatio = (ours: unknown, theirs: unknown) => (typeof ours === 'number' && typeof theirs === 'number' && theirs > 0 ? fmt(ours / theirs) : '–');
  for (const suite of suites) {
    const rs = res.benchmarks.filter((b) => b.suite === suite);
    const title = suite === 'kernels' ? 'Kernels' : suite === 'arch' ? 'Architectures' : suite === 'small' ? 'Small-model tier (20-60 M parameters)' : 'Scaling';
    L.push(`## ${title}`, '');
    for (const group of unique(rs.map((r) => r.group))) {
      const g = rs.filter((r) => r.group === group);
      L.push(`### ${group}`, '', ...header(), ...names(g).map(row), '');
      if (suite === 'kernels') {
        const file = `${suite}-${slug(group)}.svg`;
        writeFileSync(join(dir, file), barChart({ title: `${group}${hasTorch ? ' — vlmix backends and PyTorch' : ''}`, unit: unitLabel(g[0]!.unit), groups: barGroups(names(g), group), series: seriesOf(g) }));
        charts.push(file);
        L.push(`![${group}](${file})`, '');
      }
    }
    if (suite === 'arch' || suite === 'small') {
      // One chart per measurement across presets (units differ between them).
      for (const kind of ['forward', 'train step', 'generate']) {
        const g = rs.filter((r) => r.name.endsWith(` ${kind}`));
        if (!g.length) continue;
        const file = `${suite}-${slug(kind)}.svg`;
        writeFileSync(join(dir, file), barChart({ title: `${kind} per preset`, unit: unitLabel(g[0]!.unit), groups: barGroups(names(g), ''), series: seriesOf(g) }));
        charts.push(file);
        L.push(`![${kind}](${file})`, '');
      }
    }
    if (suite === 'arch' || suite === 'small') {
      const mem = rs.filter((r) => r.extra && 'tfPeakBytes' in r.extra);
      if (mem.length) {
        const mib = (x: unknown) => (typeof x === 'number' ? fmt(x / MiB) : 'n/a');
        L.push('### Kernels, memory and fallback kernels (extra calls after timing)', '');
        L.push('Kernels: dispatches through the tfjs engine in one call (tf.profile; a train step includes its gradients and AdamW; a replayed step\'s recorded kernels bypass the engine, so only AdamW and its assigns count). ' +
          'RSS Δ: rise of the peak resident set over one call (VmHWM reset through /proc/self/clear_refs), both sides. ' +
          'Alloc Δ: the allocator\'s peak of live bytes over one call above what was live before (vlmix-cpu: native high-water mark; ' +
          'PyTorch: profiler memory events, transients inside one op netted).', '');
        L.push('Alloc Δ / PyTorch: the two allocator peaks side by side (> 1: vlmix holds more at its peak).', '');
        L.push('| Benchmark | backend | kernels | tf peak MiB | tf live MiB after | native peak MiB | RSS Δ MiB | alloc Δ MiB | PyTorch RSS Δ MiB | PyTorch alloc Δ MiB | alloc Δ / PyTorch | fallback kernels |',
          '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
        for (const r of mem) {
          const e = r.extra as Record<string, unknown>;
          const fb = e.fallbacks as Record<string, number> | undefined;
          const fbs = fb ? (Object.keys(fb).length ? `${e.fallbackCount}: ${Object.entries(fb).map(([k, v]) => `${k}×${v}`).join(', ')}` : '0') : 'n/a';
          const np = e.nativePeakBytes != null ? `${mib(e.nativePeakBytes)}${e.nativePeakScope === 'process' ? ' (process)' : ''}` : 'n/a';
          const tm = r.torch?.memory;
          L.push(`| ${r.name} | \`${r.backend}\` | ${e.kernels ?? 'n/a'} | ${mib(e.tfPeakBytes)} | ${mib(e.tfBytesAfter)} | ${np} | ${mib(e.rssPeakDeltaBytes)} | ${mib(e.nativePeakDeltaBytes)} | ${tm ? mib(tm.rssPeakDeltaBytes) : '–'} | ${tm ? mib(tm.allocPeakDeltaBytes) : '–'} | ${allocRatio(e.nativePeakDeltaBytes, tm?.allocPeakDeltaBytes)} | ${fbs} |`);
        }
        L.push('');
      }
    }
    if (suite === 'scaling') {
      const fits = res.fits.filter((f) => f.suite === 'scaling');
      if (fits.length) {
        L.push('### Fitted exponents (least squares on log–log: time ∝ x^k)', '', '| Series | who | k | r² | points |', '| --- | --- | ---: | ---: | ---: |');
        for (const f of fits) L.push(`| ${f.series} | ${f.backend === 'pytorch' ? 'PyTorch' : `\`${f.backend}\``} | ${f.exponent.toFixed(2)} | ${f.r2.toFixed(3)} | ${f.n} |`);
        L.push('');
      }
      for (const series of unique(rs.map((r) => r.curve?.series).filter((s): s is string => !!s))) {
        const pts = rs.filter((r) => r.curve?.series === series && !r.error);
        const lines = backends.map((b) => ({
          name: b,
          points: pts.filter((r) => r.backend === b).map((r) => ({ x: r.curve!.x, y: r.median })),
          exponent: fits.find((f) => f.series === series && f.backend === b)?.exponent,
        }));
        const tp = pts.filter((r) => r.backend === backends[0] && r.torch);
        if (tp.length) lines.push({ name: 'PyTorch', points: tp.map((r) => ({ x: r.curve!.x, y: r.torch!.median })), exponent: fits.find((f) => f.series === series && f.backend === 'pytorch')?.exponent });
        const file = `scaling-${slug(series)}.svg`;
        writeFileSync(join(dir, file), logLogChart({ title: series, xLabel: pts[0]?.curve?.xLabel ?? 'x', yLabel: `${pts[0]?.unit ?? 'ms'} per step`, series: lines }));
        charts.push(file);
        L.push(`![${series}](${file})`, '');
      }
    }
  }
  const multi = res.benchmarks.filter((b) => b.acrossProcesses);
  if (multi.length) {
    L.push('## Run-to-run spread', '', 'Each process\'s median in order; max/min: the largest over the smallest; within-run: the median over processes of one run\'s (p75 − p25) / median.', '');
    L.push('| Benchmark | backend | process medians | max/min | within-run | PyTorch process medians | PyTorch max/min | PyTorch within-run |', '| --- | --- | --- | ---: | ---: | --- | ---: | ---: |');
    const spread = (a: { medians: number[] }) => fmt(Math.max(...a.medians) / Math.min(...a.medians));
    for (const r of multi) {
      const a = r.acrossProcesses!;
      const t = r.torch?.acrossProcesses;
      L.push(`| ${r.name} | \`${r.backend}\` | ${a.medians.map(fmt).join(', ')} | ${spread(a)} | ${fmt(a.withinRunIqrRel)} | ${t ? t.medians.map(fmt).join(', ') : '–'} | ${t ? spread(t) : '–'} | ${t ? fmt(t.withinRunIqrRel) : '–'} |`);
    }
    L.push('');
  }
  const failed = res.benchmarks.filter((b) => b.error);
  if (failed.length) {
    L.push('## Failed or skipped', '', ...failed.map((f) => `- ${f.name} on \`${f.backend}\`: ${f.error}`), '');
  }
  writeFileSync(join(dir, 'report.md'), `${L.join('\n')}\n`);
  return charts;
}
