/**
 * `pnpm bench data`: streaming a CogVLM-SFT-format folder (images/ + labels/) of N generated 224-px JPEGs
 * into a typeC-tiny training run, for a few N, each in a fresh process: time to index the folder, images/s
 * decoded (+ resized) on the main thread vs images/s a training step consumes, and the peak resident set.
 * Memory must not grow with N. Datasets are generated once (bench/data/make_dataset.py, PIL) and cached.
 * Options: --images 2000,20000 --steps S --out DIR
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineInfo } from '../machine.js';

const BENCH = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const DATA_HELP = `Usage: pnpm bench data [--images 2000,20000] [--configs 0:js,1:js,1:sharp] [--steps 60] [--cache DIR] [--out DIR]

Streams a folder of N generated 224-px JPEGs into typeC-tiny training (fresh process per N): index time,
decode vs training throughput (images/s) and peak RSS. Needs /usr/bin/python3 with PIL to generate the data.
`;

export async function runDataBench(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(DATA_HELP);
    return 0;
  }
  const opt = (k: string, d: string) => (argv.includes(`--${k}`) ? argv[argv.indexOf(`--${k}`) + 1]! : d);
  const sizes = opt('images', '2000,20000').split(',').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 10)) {
    process.stderr.write(`bench data: --images: expected integers >= 10, got ${opt('images', '')}\n`);
    return 2;
  }
  const steps = Number(opt('steps', '60'));
  // worker count : decoder, e.g. 0:js,1:js,1:sharp
  const configs = opt('configs', '0:js,1:js,1:sharp').split(',').map((c) => {
    const [w, d] = c.split(':');
    return { workers: Number(w), decoder: d ?? 'js' };
  });
  const cache = opt('cache', join(os.tmpdir(), 'vlmix-bench-data'));
  const out = opt('out', join(BENCH, 'out', `${new Date().toISOString().replace(/[:.]/g, '-')}-data`));
  mkdirSync(out, { recursive: true });
  const rows: Record<string, unknown>[] = [];
  for (const n of sizes) {
    const dir = join(cache, String(n));
    if (!existsSync(join(dir, 'labels', `${String(n - 1).padStart(6, '0')}.json`))) {
      process.stdout.write(`generating ${n} JPEGs in ${dir} ...\n`);
      const g = spawnSync('/usr/bin/python3', [join(BENCH, 'data', 'make_dataset.py'), dir, String(n)], { stdio: 'inherit' });
      if (g.status !== 0) return 1;
    }
    for (const { workers, decoder } of configs) {
      const file = join(out, `n${n}-w${workers}-${decoder}.json`);
      const w = spawnSync(process.execPath, ['--expose-gc', '--conditions=@vlmix/source', '--import', 'tsx', join(BENCH, 'src', 'data-worker.ts'), dir, String(steps), file, String(workers), decoder], { stdio: 'inherit', cwd: resolve(BENCH, '..') });
      if (w.status !== 0) return 1;
      const r = { images: n, ...JSON.parse(readFileSync(file, 'utf8')) };
      rows.push(r);
      process.stdout.write(`${n} images, ${workers} decode workers (${decoder}): ${JSON.stringify(r)}\n`);
    }
  }
  const mb = (b: unknown) => ((b as number) / 2 ** 20).toFixed(0);
  const md = [
    `# pnpm bench data — ${new Date().toISOString().slice(0, 10)}`, '',
    `- Machine: ${machineInfo().label}; load average at end ${os.loadavg().map((x) => x.toFixed(2)).join('/')}`,
    `- typeC-tiny, batch 8, ${steps} steps, images resized to 32 px; one fresh process per row`, '',
    'Decode: 200 images decoded + resized, on the main thread and on the run\'s decode workers (all in flight). Step: the step\'s own compute (stepMs) and the wall time per step including any wait for data; consumed = 8 images / wall step.', '',
    '| images | decode workers | decoder | index s | decode img/s (main thread) | decode img/s (workers) | step ms | wall ms/step | consumed img/s | index heap MiB (after GC) | + items heap MiB | bytes / record (index + items) | RSS after index MiB | peak RSS MiB |',
    '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.images} | ${r.workers} | ${r.decoder} | ${(r.indexSeconds as number).toFixed(1)} | ${(r.decodePerSec as number).toFixed(0)} | ${r.poolDecodePerSec == null ? '–' : (r.poolDecodePerSec as number).toFixed(0)} | ${(r.stepMs as number).toFixed(1)} | ${(r.wallStepMs as number).toFixed(1)} | ${(r.consumedPerSec as number).toFixed(0)} | ${(((r.heapAfterIndexBytes as number) - (r.heapStartBytes as number)) / 2 ** 20).toFixed(1)} | ${(((r.heapAfterSplitBytes as number) - (r.heapAfterIndexBytes as number)) / 2 ** 20).toFixed(1)} | ${(((r.heapAfterSplitBytes as number) - (r.heapStartBytes as number)) / (r.records as number)).toFixed(0)} | ${mb(r.rssAfterIndexBytes)} | ${mb(r.rssPeakBytes)} |`),
  ];
  writeFileSync(join(out, 'report.md'), `${md.join('\n')}\n`);
  writeFileSync(join(out, 'results.json'), `${JSON.stringify({ steps, rows }, null, 1)}\n`);
  process.stdout.write(`${md.join('\n')}\nreport: ${out}/report.md\n`);
  return 0;
}
