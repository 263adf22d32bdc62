import { describe, expect, it } from 'vitest';
import { getPixel } from '../src/image.js';
import { insideShape, makeShapesDataset, SHAPE_COLORS, shapesTemplates } from '../src/synthetic.js';

const big = makeShapesDataset({ seed: 7, train: 1000, heldOut: 200 });

describe('makeShapesDataset', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const a = makeShapesDataset({ seed: 'abc', train: 30, heldOut: 10 });
    const b = makeShapesDataset({ seed: 'abc', train: 30, heldOut: 10 });
    const c = makeShapesDataset({ seed: 'abd', train: 30, heldOut: 10 });
    const sig = (d: typeof a) => JSON.stringify(d.train.map((s) => [s.question, s.answer, s.scene, Buffer.from(s.image.data).toString('base64')]));
    expect(sig(a)).toBe(sig(b));
    expect(sig(a)).not.toBe(sig(c));
  });
  it('produces the requested sizes and image shape', () => {
    const d = makeShapesDataset({ seed: 1, size: 24, train: 5, heldOut: 3 });
    expect(d.train).toHaveLength(5);
    expect(d.heldOut).toHaveLength(3);
    for (const s of d.train) expect([s.image.width, s.image.height, s.image.data.length]).toEqual([24, 24, 24 * 24 * 3]);
  });
  it('balances answers per question template (each within ±30% of uniform on 1000 samples)', () => {
    const kinds = new Map<string, number>();
    for (const s of big.train) kinds.set(s.kind, (kinds.get(s.kind) ?? 0) + 1);
    expect([...kinds.keys()].sort()).toEqual(['color', 'count', 'position', 'shape']);
    for (const n of kinds.values()) expect(Math.abs(n - 250)).toBeLessThanOrEqual(75);
    for (const t of big.templates) {
      const samples = big.train.filter((s) => s.question === t.question);
      expect(samples.length).toBeGreaterThan(50);
      const uniform = samples.length / t.answers.length;
      for (const a of t.answers) {
        const n = samples.filter((s) => s.answer === a).length;
        expect(Math.abs(n - uniform), `${t.question} → ${a}: ${n} vs ${uniform}`).toBeLessThanOrEqual(0.3 * uniform);
      }
      // Shuffle-bag sampling makes it exact: counts differ by at most one.
      const counts = t.answers.map((a) => samples.filter((s) => s.answer === a).length);
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      // No answer outside the template's set.
      expect(samples.every((s) => t.answers.includes(s.answer))).toBe(true);
    }
  });
  it('every template has ≥2 answers and the question text never contains its answer', () => {
    for (const t of shapesTemplates()) expect(t.answers.length).toBeGreaterThanOrEqual(2);
    // Position questions mention both options, so check the other kinds only.
    for (const s of big.train.filter((x) => x.kind !== 'position')) expect(s.question.includes(s.answer)).toBe(false);
  });
  it('renders shapes: centre pixel has the shape colour, background elsewhere', () => {
    for (const s of big.train.slice(0, 200)) {
      for (const sh of s.scene) expect(getPixel(s.image, sh.cx, sh.cy)).toEqual([...SHAPE_COLORS[sh.color]!]);
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++) if (!s.scene.some((sh) => insideShape(sh, x, y))) expect(getPixel(s.image, x, y)).toEqual([24, 24, 24]);
      expect(getPixel(s.image, 0, 0)).toEqual([24, 24, 24]); // corners are always background
    }
  });
  it('answers agree with the scene', () => {
    for (const s of big.train) {
      if (s.kind === 'count') expect(['one', 'two', 'three'][s.scene.length - 1]).toBe(s.answer);
      else expect(s.scene).toHaveLength(1);
      const sh = s.scene[0]!;
      if (s.kind === 'color') expect(sh.color).toBe(s.answer);
      if (s.kind === 'shape') expect(sh.shape).toBe(s.answer);
      if (s.answer === 'left') expect(sh.cx + sh.r).toBeLessThan(16);
      if (s.answer === 'right') expect(sh.cx - sh.r).toBeGreaterThanOrEqual(16);
      if (s.answer === 'top') expect(sh.cy + sh.r).toBeLessThan(16);
      if (s.answer === 'bottom') expect(sh.cy - sh.r).toBeGreaterThanOrEqual(16);
    }
    // Shapes in counting scenes do not touch, so every shape's pixels are visible.
    for (const s of big.train.filter((x) => x.kind === 'count'))
      for (const a of s.scene) for (const b of s.scene) if (a !== b) expect(Math.hypot(a.cx - b.cx, a.cy - b.cy)).toBeGreaterThan(a.r + b.r);
  });
  it('held-out samples are disjoint from train', () => {
    const key = (s: (typeof big.train)[number]) => s.question + '|' + Buffer.from(s.image.data).toString('base64');
    const train = new Set(big.train.map(key));
    expect(big.heldOut.filter((s) => train.has(key(s)))).toEqual([]);
    // and they come from a different stream, not a copy of the train prefix
    expect(key(big.heldOut[0]!)).not.toBe(key(big.train[0]!));
  });
  it('respects kinds/colors options', () => {
    const d = makeShapesDataset({ seed: 3, train: 40, heldOut: 0, kinds: ['color'], colors: ['purple', 'orange'] });
    expect(new Set(d.train.map((s) => s.answer))).toEqual(new Set(['purple', 'orange']));
    expect(d.train.every((s) => s.kind === 'color')).toBe(true);
  });
  it('validates options with clear messages', () => {
    expect(() => makeShapesDataset({ seed: 1, train: 1, heldOut: 1, size: 8 })).toThrow('makeShapesDataset: size must be an integer ≥ 16, got 8');
    expect(() => makeShapesDataset({ seed: 1, train: -1, heldOut: 1 })).toThrow('makeShapesDataset: train must be a non-negative integer, got -1');
    expect(() => makeShapesDataset({ seed: 1, train: 1, heldOut: 1, colors: ['red', 'pink'] })).toThrow(
      'makeShapesDataset: unknown colour "pink" (expected one of red, green, blue, yellow, purple, orange)',
    );
  });
});

describe('trainKindWeights', () => {
  it('skews the train split only; held-out stays balanced; bad weights are named', () => {
    const d = makeShapesDataset({ seed: 4, train: 600, heldOut: 400, trainKindWeights: { shape: 3 } });
    const count = (xs: { kind: string }[], k: string) => xs.filter((x) => x.kind === k).length;
    expect(count(d.train, 'shape')).toBe(300); // 3 of 6 bag slots
    expect(count(d.train, 'color')).toBe(100);
    expect(count(d.heldOut, 'shape')).toBe(100);
    expect(() => makeShapesDataset({ seed: 1, train: 4, heldOut: 0, kinds: ['color'], trainKindWeights: { shape: 2 } })).toThrow(/trainKindWeights names kind 'shape', which is not among kinds \(color\)/);
    expect(() => makeShapesDataset({ seed: 1, train: 4, heldOut: 0, trainKindWeights: { shape: 1.5 } })).toThrow(/trainKindWeights.shape must be a non-negative integer, got 1.5/);
  });
});
