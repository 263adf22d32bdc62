// Device entry (bundled into .device/parity.mjs by bench/device/bundle.mjs): runs the backend-native
// op-parity, fused-kernel and CUDA test files (vitest replaced by ./vitest-shim.ts) — every kernel on
// vlmix-cuda (and vlmix-cpu) against tfjs 'cpu' — prints the results and writes $OUT/parity.json.
// Exits 2 with "vlmix-cuda unavailable: <reason>" when there is no usable GPU, 1 on any failure.
//   env: OUT (default .), VLMIX_DEVICE_ALLOW_NO_GPU=1, VLMIX_DEVICE_FILTER (regex over "suite > test" names), VLMIX_TF32=1 (parity with TF32).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { cudaInfo, cudaMemory, nativeInfo } from '../../packages/backend-native/src/index.js';
import { runAll } from './vitest-shim.js';

const out = process.env.OUT || '.';
mkdirSync(out, { recursive: true });
const started = new Date().toISOString();
const info = cudaInfo();
const header = { started, node: process.version, tfjs: tf.version_core, cuda: info, native: nativeInfo() };
console.log(`vlmix device parity: ${JSON.stringify(header)}`);

function write(body: object) {
  writeFileSync(join(out, 'parity.json'), `${JSON.stringify({ ...header, ...body }, null, 1)}\n`);
}

// VLMIX_DEVICE_ALLOW_NO_GPU=1 runs the suite anyway (vlmix-cpu only): a check of the bundle itself.
if (!info.available && !process.env.VLMIX_DEVICE_ALLOW_NO_GPU) {
  const msg = `vlmix-cuda unavailable: ${info.reason}`;
  write({ ok: false, error: msg });
  console.error(msg);
  process.exit(2);
}

// The test files register their suites on import (after the availability check above); like
// vitest.setup.ts with VLMIX_BACKEND=cpu, start from tfjs 'cpu' (the tests switch backends themselves).
await tf.setBackend('cpu');
await import('../../packages/backend-native/test/parity.test.js');
await import('../../packages/backend-native/test/fused.test.js');
await import('../../packages/backend-native/test/cuda.test.js');

const filter = process.env.VLMIX_DEVICE_FILTER ? new RegExp(process.env.VLMIX_DEVICE_FILTER) : undefined;
const t0 = performance.now();
const results = await runAll(filter);
const count = (s: string) => results.filter((r) => r.status === s).length;
const summary = { pass: count('pass'), fail: count('fail'), skip: count('skip'), seconds: (performance.now() - t0) / 1000 };
const cudaResults = results.filter((r) => r.name.includes('vlmix-cuda'));
write({
  ok: summary.fail === 0,
  summary,
  cuda: { ...info, memory: cudaMemory(), pass: cudaResults.filter((r) => r.status === 'pass').length,
    fail: cudaResults.filter((r) => r.status === 'fail').length },
  failures: results.filter((r) => r.status === 'fail'),
  results,
});
console.log(`\n${summary.pass} passed, ${summary.fail} failed, ${summary.skip} skipped in ${summary.seconds.toFixed(1)} s` +
  ` (vlmix-cuda: ${cudaResults.filter((r) => r.status === 'pass').length} passed, ` +
  `${cudaResults.filter((r) => r.status === 'fail').length} failed)`);
process.exit(summary.fail === 0 ? 0 : 1);
