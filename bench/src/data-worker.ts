/**
 * One measurement of `pnpm bench data` in a fresh process: streams a folder dataset into trainVlm and
 * reports index time, decode throughput, training steps and the peak resident set.
 *   args: DIR STEPS OUT.json WORKERS DECODER   (WORKERS: decode threads of the run, 0 = main thread; DECODER: js | sharp)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as native from '@vlmix/backend-native';
import { DecodePool, indexFolderCompact, loadImageFile } from '@vlmix/data';
import { createVlm, folderSplit, trainVlm } from '@vlmix/fusion';

const [dir, stepsArg, out, workersArg, decoderArg] = process.argv.slice(2) as [string, string, string, string | undefined, string | undefined];
const decoder = (decoderArg ?? 'js') as 'js' | 'sharp';
const workers = Number(workersArg ?? '0');
const status = (k: string) => Number(/(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(`${k}:`))!)![1]) * 1024;
await native.useBackend('auto');
const vlm = createVlm('typeC-tiny'); // before the baseline: the split's measurement is its items only
(globalThis as { gc?: () => void }).gc?.();
const rssStart = status('VmRSS');
const heapStart = process.memoryUsage().heapUsed;
// decode throughput on the main thread: 200 images, decode + resize to the model's 32 px
const t0 = performance.now();
const index = await indexFolderCompact(dir, { onWarning: () => {} });
const indexSeconds = (performance.now() - t0) / 1000;
// what the index keeps (after a full GC; the worker runs with --expose-gc), not the parse garbage
(globalThis as { gc?: () => void }).gc?.();
const rssAfterIndex = status('VmRSS');
const heapAfterIndex = process.memoryUsage().heapUsed;
// what training holds: the items of the split (lazy: record and item number) on top of the index
const split = await folderSplit(dir, vlm, 1);
(globalThis as { gc?: () => void }).gc?.();
const heapAfterSplit = process.memoryUsage().heapUsed;
const items = split.train.length + split.heldOut.length;
const t1 = performance.now();
const sample = Array.from({ length: Math.min(200, index.length) }, (_, i) => ({ imagePath: index.imagePath(i) }));
for (const r of sample) loadImageFile({ path: r.imagePath, width: 32, height: 32 });
const decodePerSec = sample.length / ((performance.now() - t1) / 1000);
// the same 200 images on the run's decode workers, all requests in flight at once
let poolDecodePerSec: number | null = null;
if (workers > 0) {
  const pool = new DecodePool({ workers });
  await pool.decode({ path: sample[0]!.imagePath, width: 32, height: 32, decoder }); // workers started and warm
  const t2 = performance.now();
  await Promise.all(sample.map((x) => pool.decode({ path: x.imagePath, width: 32, height: 32, decoder })));
  poolDecodePerSec = sample.length / ((performance.now() - t2) / 1000);
  await pool.close();
}
const phases: Record<string, number> = {};
let last = performance.now();
const steps = Number(stepsArg);
const r = await trainVlm('typeC-tiny', {
  steps, dataDir: dir, batchSize: 8, heldOutSize: 1, log: 'silent', checkpointEverySeconds: false, decodeWorkers: workers, imageDecoder: decoder,
  onPhase: (p) => { phases[p] = performance.now() - last; last = performance.now(); },
});
writeFileSync(out, JSON.stringify({
  records: index.length, items, decoder, heapAfterSplitBytes: heapAfterSplit, workers, heapStartBytes: heapStart, indexSeconds, decodePerSec, poolDecodePerSec, stepMs: r.stepMs,
  // wall time per step, waiting for data included (stepMs is the step's own compute, which with workers no longer holds the decode)
  wallStepMs: (r.trainSeconds * 1000) / steps, consumedPerSec: (8 * steps) / r.trainSeconds,
  rssStartBytes: rssStart, rssAfterIndexBytes: rssAfterIndex, heapAfterIndexBytes: heapAfterIndex, rssPeakBytes: status('VmHWM'), backend: native.nativeInfo().reason,
}));
