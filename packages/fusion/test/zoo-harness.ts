// Shared check for zoo recipes: a few hundred steps on the synthetic set, the loss must go down.
import { trainVlm } from '../src/index.js';

export interface LossTrend {
  first: number;
  last: number;
  losses: number[];
}

/** Trains `preset` on the synthetic set (no held-out evaluation) and returns the means of its first and last 20 losses. */
export async function lossTrend(preset: string, opts: { steps?: number; batchSize?: number; seed?: number; lr?: number } = {}): Promise<LossTrend> {
  const steps = opts.steps ?? 200;
  const losses: number[] = [];
  await trainVlm(preset, {
    steps, seed: opts.seed ?? 0, batchSize: opts.batchSize ?? 8, lr: opts.lr, trainSize: 256, heldOutSize: 0,
    log: 'silent', vqSteps: 100, checkpointEverySeconds: false, onStep: (r) => losses.push(r.loss),
  });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { first: mean(losses.slice(0, 20)), last: mean(losses.slice(-20)), losses };
}
