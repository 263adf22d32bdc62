import { describe, expect, it } from 'vitest';
import { CLIP_MEAN, CLIP_STD, fromFloatCHW, getPixel, makeImage, resize, toFloatCHW, toFloatHWC, type RgbImage } from '../src/image.js';

const img2x1: RgbImage = { width: 2, height: 1, data: Uint8Array.from([0, 100, 255, 200, 50, 0]) };

describe('image helpers', () => {
  it('toFloatCHW is channel-first and scaled to [0,1] by default', () => {
    expect(Array.from(toFloatCHW(img2x1))).toEqual([0, 200 / 255, 100 / 255, 50 / 255, 1, 0].map(Math.fround));
  });
  it('toFloatHWC keeps interleaving and applies CLIP normalisation', () => {
    const out = toFloatHWC(img2x1, CLIP_MEAN, CLIP_STD);
    expect(out[0]).toBeCloseTo((0 - CLIP_MEAN[0]) / CLIP_STD[0], 5);
    expect(out[2]).toBeCloseTo((1 - CLIP_MEAN[2]) / CLIP_STD[2], 5);
    expect(out[4]).toBeCloseTo((50 / 255 - CLIP_MEAN[1]) / CLIP_STD[1], 5);
    const chw = toFloatCHW(img2x1, CLIP_MEAN, CLIP_STD);
    expect(chw[1]).toBeCloseTo(out[3]!, 6); // R of pixel 1
  });
  it('fromFloatCHW inverts toFloatCHW (every byte value, CLIP normalisation) and clamps out-of-range values', () => {
    const all: RgbImage = { width: 16, height: 16, data: Uint8Array.from({ length: 768 }, (_, i) => (i * 7) % 256) };
    expect(fromFloatCHW(toFloatCHW(all, CLIP_MEAN, CLIP_STD), 16, 16, CLIP_MEAN, CLIP_STD)).toEqual(all);
    expect(fromFloatCHW(toFloatCHW(img2x1), 2, 1)).toEqual(img2x1);
    // R, G, B planes of a 2x1 image: -0.5 -> 0, 2 -> 255, 0.5 -> 128 (round half up), NaN -> 0
    expect(Array.from(fromFloatCHW([-0.5, 2, 0.5, Number.NaN, 1, 0], 2, 1).data)).toEqual([0, 128, 255, 255, 0, 0]);
    expect(() => fromFloatCHW([0, 0, 0], 2, 1)).toThrow('fromFloatCHW: data: expected 3*1*2 = 6 values, got 3');
    expect(() => fromFloatCHW([], 0, 1)).toThrow('fromFloatCHW: width and height must be positive integers, got 0x1');
  });
  it('CLIP constants', () => {
    expect(CLIP_MEAN).toEqual([0.48145466, 0.4578275, 0.40821073]);
    expect(CLIP_STD).toEqual([0.26862954, 0.26130258, 0.27577711]);
  });
  it('normalisation argument errors', () => {
    expect(() => toFloatCHW(img2x1, [0, 0], [1, 1, 1])).toThrow('toFloat: mean and std must have 3 entries (RGB), got mean=2 std=3');
    expect(() => toFloatCHW(img2x1, [0, 0, 0], [1, 0, 1])).toThrow('toFloat: std entries must be non-zero, got [1, 0, 1]');
    expect(() => toFloatCHW({ width: 2, height: 2, data: new Uint8Array(3) })).toThrow(
      'toFloatCHW: data length must be width*height*3 = 2*2*3 = 12, got 3',
    );
  });
  it('resize: identity, constant images and bilinear interpolation', () => {
    const noise: RgbImage = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => (i * 37) % 256) };
    expect(Array.from(resize(noise, 5, 3).data)).toEqual(Array.from(noise.data));
    const flat = resize(makeImage(7, 5, [10, 20, 30]), 3, 11);
    expect(new Set(flat.data).size).toBe(3);
    expect(getPixel(flat, 2, 10)).toEqual([10, 20, 30]);
    // Upsampling 2→4 with half-pixel centres: taps at -0.25, 0.25, 0.75, 1.25 → clamp, 25%, 75%, clamp.
    const up = resize({ width: 2, height: 1, data: Uint8Array.from([0, 0, 0, 200, 100, 40]) }, 4, 1);
    expect(Array.from(up.data)).toEqual([0, 0, 0, 50, 25, 10, 150, 75, 30, 200, 100, 40]);
  });
  it('resize rejects bad targets', () => {
    expect(() => resize(img2x1, 0, 4)).toThrow('resize: target: width and height must be positive integers, got 0x4');
  });
  it('getPixel bounds', () => {
    expect(() => getPixel(img2x1, 2, 0)).toThrow('getPixel: (2, 0) outside 2x1 image');
  });
});
