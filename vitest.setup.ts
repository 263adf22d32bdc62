// Selects the tensor backend for the whole test run: VLMIX_BACKEND=cpu (default) | wasm | vlmix-cpu | auto.
import * as tf from '@tensorflow/tfjs';

const want = process.env.VLMIX_BACKEND ?? 'cpu';
if (want === 'cpu') {
  await tf.setBackend('cpu');
} else {
  const native = await import('@vlmix/backend-native');
  await native.useBackend(want as Parameters<typeof native.useBackend>[0]);
}
