/**
 * One measurement of `pnpm bench data` in a fresh process: streams a folder dataset into trainVlm and
 * reports index time, decode throughput, training steps and the peak resident set.
 *   args: DIR STEPS OUT.json
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as native from '@vlmix/backend-native';
import { indexImageTextFolder, readRecordImage, resize } from '@vlmix/data';
import { trainVlm } from '@vlmix/fusion';

const [dir, stepsArg, out] = process.argv.slice(2) as [string, string, string];
const status = (k: string) => Number(/(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(`${k}:`))!)![1]) * 1024;
await native.useBackend('auto');
(globalThis as { gc?: () => void }).gc?.();
const rssStart = status('VmRSS');
const heapStart = process.memoryUsage().heapUsed;
// decode throughput on the main thread: 200 images, decode + resize to the model's 32 px
const t0 = performance.now();
const index = await indexImageTextFolder(dir, { onWarning: () => {} });
const indexSeconds = (performance.now() - t0) / 1000;
// what the index keeps (after a full GC; the worker runs with --expose-gc), not the parse garbage
(globalThis as { gc?: () => void }).gc?.();
const rssAfterIndex = status('VmRSS');
const heapAfterIndex = process.memoryUsage().heapUsed;
const t1 = performance.now();
const sample = index.slice(0, 200);
for (const r of sample) resize(readRecordImage(r), 32, 32);
const decodePerSec = sample.length / ((performance.now() - t1) / 1000);
const phases: Record<string, number> = {};
let last = performance.now();
const steps = Number(stepsArg);
const r = await trainVlm('typeC-tiny', {
  steps, dataDir: dir, batchSize: 8, heldOutSize: 1, log: 'silent', checkpointEverySeconds: false,
  onPhase: (p) => { phases[p] = performance.now() - last; last = performance.now(); },
});
writeFileSync(out, JSON.stringify({
  records: index.length, heapStartBytes: heapStart, indexSeconds, decodePerSec, stepMs: r.stepMs, consumedPerSec: (8 * 1000) / r.stepMs,
  rssStartBytes: rssStart, rssAfterIndexBytes: rssAfterIndex, heapAfterIndexBytes: heapAfterIndex, rssPeakBytes: status('VmHWM'), backend: native.nativeInfo().reason,
}));
