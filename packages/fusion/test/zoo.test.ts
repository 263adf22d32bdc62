// Every zoo recipe trains on the synthetic set: 200 steps at batch 8, the mean of the last 20 losses
// below 0.8x the first 20's. (Parity of each system's parts lives in its own tests.)
import { describe, expect, it } from 'vitest';
import { ZOO_PRESETS } from '../src/index.js';
import { lossTrend } from './zoo-harness.js';

describe('zoo recipes train', () => {
  it('the zoo registers its presets with unique names', () => {
    const names = ZOO_PRESETS.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
  });
  for (const p of ZOO_PRESETS) {
    it(`${p.name}: loss goes down in 200 steps`, async () => {
      const t = await lossTrend(p.name);
      expect(t.losses.every(Number.isFinite)).toBe(true);
      expect(t.last).toBeLessThan(0.8 * t.first);
    }, 300_000);
  }
});
