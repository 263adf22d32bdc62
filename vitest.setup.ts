// Selects the tensor backend for the whole test run. VLMIX_BACKEND = auto (default: the native
// vlmix-cpu backend when its addon is built, else tfjs 'cpu') | cpu | wasm | vlmix-cpu.
import * as tf from '@tensorflow/tfjs';

// Silence tfjs 'cpu''s tfjs-node advert as @vlmix/core does. Not by importing core here: a module
// loaded by the setup is loaded before a test file's vi.mock (io-atomic.test.ts mocks node:fs/promises).
const cpu = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
if (cpu) cpu.firstUse = false;

const want = process.env.VLMIX_BACKEND ?? 'auto';
if (want === 'cpu') {
  await tf.setBackend('cpu');
} else {
  const native = await import('@vlmix/backend-native');
  const r = await native.useBackend(want as Parameters<typeof native.useBackend>[0]);
  if (process.env.VLMIX_TEST_VERBOSE) console.log(`test backend: ${r.backend} (${r.reason})`);
}
