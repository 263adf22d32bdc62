// Where the per-op time of a tiny op goes on vlmix-cpu: the tfjs engine, our kernel wrapper (JS), the
// N-API crossing, allocation. Each line times one layer of the stack for tf.add on [1] tensors.
//   cd packages/backend-native && npx tsx --conditions=@vlmix/source bench-native/dispatch_bench.ts
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '@vlmix/backend-native';
import type { NativeBackend } from '../src/backend.js';

function perCall(name: string, f: () => void, n = 200_000) {
  for (let i = 0; i < n / 10; i++) f();
  const best: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) f();
    best.push(((performance.now() - t0) * 1000) / n);
  }
  best.sort((a, b) => a - b);
  console.log(`${name.padEnd(62)} ${best[0]!.toFixed(3).padStart(7)} us  (median ${best[2]!.toFixed(3)})`);
}

async function main() {
  await useBackend((process.env.BENCH_BACKEND ?? 'vlmix-cpu') as 'vlmix-cpu');
  console.log(`# backend ${tf.getBackend()}, load ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const a = tf.tensor1d([1]), b = tf.tensor1d([2]);
  perCall('tf.add([1], [1]) + dispose (engine + kernel + addon)', () => tf.add(a, b).dispose());
  perCall('engine.runKernel(Add) + dispose', () => (tf.engine().runKernel('Add', { a, b }) as tf.Tensor).dispose());
  const be = tf.backend() as NativeBackend;
  if (!('nat' in be)) return;
  const add = tf.getKernel('Add', tf.getBackend())!.kernelFunc;
  perCall('kernelFunc(Add) + disposeData (our JS wrapper + addon)', () => {
    const out = add({ inputs: { a, b }, backend: be, attrs: {} }) as tf.TensorInfo;
    be.disposeData(out.dataId);
  });
  const nat = be.nat;
  const ia = be.nid(a), ib = be.nid(b), code = nat.binaryOps.Add!;
  perCall('addon.binary + addon.free (N-API, plan, alloc, kernel)', () => nat.free(nat.binary(code, 0, ia, [1], ib, [1], [1])));
  perCall('addon.free(addon.alloc(1)) (two crossings + malloc/free)', () => nat.free(nat.alloc(1)));
  perCall('addon.size(id) (one crossing, no work)', () => nat.size(ia));
}
main();
