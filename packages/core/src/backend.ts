/** Backend helpers that belong to core (backend choice itself lives in @vlmix/backend-native). */
import * as tf from '@tensorflow/tfjs';

/**
 * tfjs 'cpu' prints a banner recommending tfjs-node on its first tensor in Node. vlmix ships its own
 * native backend (and tfjs-node cannot install offline), so the advice would mislead: silence it.
 */
export function silenceCpuBanner(): void {
  const cpu = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (cpu) cpu.firstUse = false;
}

silenceCpuBanner();
