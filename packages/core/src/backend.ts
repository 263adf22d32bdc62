/** Backend helpers that belong to core (backend choice itself lives in @vlmix/backend-native). */
import * as tf from '@tensorflow/tfjs';

interface CpuLike {
  firstUse?: boolean;
}
interface EngineInternals {
  registry: Record<string, CpuLike>;
  registryFactory: Record<string, { factory: () => unknown; priority: number; vlmixQuiet?: boolean }>;
}

/**
 * tfjs 'cpu' prints a banner recommending tfjs-node on its first tensor in Node. vlmix ships its own
 * native backend (and tfjs-node cannot install offline), so the advice would mislead: silence it.
 * The engine builds a fresh instance when it picks its default backend, so the factory is wrapped too.
 */
export function silenceCpuBanner(): void {
  const engine = tf.engine() as unknown as EngineInternals;
  const live = engine.registry?.cpu;
  if (live) live.firstUse = false;
  const entry = engine.registryFactory?.cpu;
  if (entry && !entry.vlmixQuiet) {
    const make = entry.factory;
    entry.factory = () => {
      const b = make() as CpuLike;
      if (b && typeof b === 'object') b.firstUse = false;
      return b;
    };
    entry.vlmixQuiet = true;
  }
}

silenceCpuBanner();
