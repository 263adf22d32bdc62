/** Seeded parameter initialisers. Each parameter draws from its own stream (seed + name). */
import * as tf from '@tensorflow/tfjs';
import { rngFor } from './random.js';

export type Init =
  | { kind: 'normal'; std: number; mean?: number }
  | { kind: 'uniform'; lo: number; hi: number }
  | { kind: 'constant'; value: number }
  /** PyTorch nn.Linear / kaiming_uniform_(a=sqrt(5)) default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
  | { kind: 'kaimingUniform'; fanIn: number }
  | { kind: 'values'; values: Float32Array };

export const zeros: Init = { kind: 'constant', value: 0 };
export const ones: Init = { kind: 'constant', value: 1 };
export const normal = (std: number, mean = 0): Init => ({ kind: 'normal', std, mean });

export function initValues(init: Init, shape: number[], seed: string | number, name: string): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  switch (init.kind) {
    case 'constant':
      out.fill(init.value);
      return out;
    case 'values':
      if (init.values.length !== n) throw new Error(`${name}: init values have ${init.values.length} elements, shape [${shape}] needs ${n}`);
      out.set(init.values);
      return out;
    default:
  }
  const rng = rngFor(seed, name);
  if (init.kind === 'normal') for (let i = 0; i < n; i++) out[i] = (init.mean ?? 0) + init.std * rng.normal();
  else if (init.kind === 'uniform') for (let i = 0; i < n; i++) out[i] = rng.uniform(init.lo, init.hi);
  else {
    const bound = 1 / Math.sqrt(init.fanIn);
    for (let i = 0; i < n; i++) out[i] = rng.uniform(-bound, bound);
  }
  return out;
}

export function initTensor(init: Init, shape: number[], seed: string | number, name: string): tf.Tensor {
  return tf.tensor(initValues(init, shape, seed, name), shape, 'float32');
}
