// Selects the tensor backend for the whole test run. VLMIX_BACKEND = auto (default: the native
// vlmix-cpu backend when its addon is built, else tfjs 'cpu') | cpu | wasm | vlmix-cpu.
import * as tf from '@tensorflow/tfjs';

// tfjs 'cpu''s tfjs-node advert is silenced by @vlmix/core (loaded by the backend package or the tests).
const want = process.env.VLMIX_BACKEND ?? 'auto';
if (want === 'cpu') {
  await tf.setBackend('cpu');
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
} else {
  const native = await import('@vlmix/backend-native');
  const r = await native.useBackend(want as Parameters<typeof native.useBackend>[0]);
  if (process.env.VLMIX_TEST_VERBOSE) console.log(`test backend: ${r.backend} (${r.reason})`);
}
