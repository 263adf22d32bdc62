import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  centerCrop, imageProcessorFromHF, makeImage, preprocessImage, resizeOutputSize, resizePil,
  type RgbImage, type ResampleFilter,
} from '../src/index.js';

// PIL 9.4 outputs made by scripts/fixtures/pil_resize.py.
const cases = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures-pil/cases.json', import.meta.url)), 'utf8')) as {
  resize: { src: { width: number; height: number; data: string }; filter: ResampleFilter; width: number; height: number; out: string }[];
  processors: { src: { width: number; height: number; data: string }; config: Record<string, unknown>; shape: number[]; pixel_values: string }[];
};
const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));
const image = (j: { width: number; height: number; data: string }): RgbImage => ({ width: j.width, height: j.height, data: bytes(j.data) });

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("resizePil: Pillow's Image.resize, bit for bit", () => {
  for (const c of cases.resize) {
    it(`${c.filter} ${c.src.width}x${c.src.height} -> ${c.width}x${c.height}`, () => {
      const out = resizePil(image(c.src), c.width, c.height, c.filter);
      expect([out.width, out.height]).toEqual([c.width, c.height]);
      expect(maxAbsDiff(out.data, bytes(c.out))).toBe(0);
    });
  }

  it('rejects bad sizes and filters by name', () => {
    const img = makeImage(4, 4);
    expect(() => resizePil(img, 0, 3)).toThrow(/width and height must be positive integers, got 0x3/);
    expect(() => resizePil(img, 3, 3, 'nearest' as never)).toThrow(/filter must be one of box, bilinear, hamming, bicubic, lanczos, got "nearest"/);
  });
});

describe('HF image processors (CLIP, SigLIP) from preprocessor_config.json', () => {
  for (const c of cases.processors) {
    it(`${String(c.config.image_processor_type)} ${c.src.width}x${c.src.height}, size ${JSON.stringify(c.config.size)}, crop ${JSON.stringify(c.config.crop_size ?? null)}`, () => {
      const px = preprocessImage(image(c.src), imageProcessorFromHF(c.config));
      expect([3, px.height, px.width]).toEqual(c.shape);
      const buf = bytes(c.pixel_values);
      const ref = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
      expect(maxAbsDiff(px.data, ref)).toBeLessThanOrEqual(1e-6);
    });
  }

  it('shortest-edge sizes truncate the long edge as int(size * long / short)', () => {
    expect(resizeOutputSize(640, 480, { shortestEdge: 224 })).toEqual({ width: 298, height: 224 }); // 224 * 640 / 480 = 298.67
    expect(resizeOutputSize(480, 640, { shortestEdge: 224 })).toEqual({ width: 224, height: 298 });
    expect(resizeOutputSize(500, 375, { height: 384, width: 384 })).toEqual({ width: 384, height: 384 });
  });

  it('center crop: floor offsets, zero padding where the crop is larger (hand-computed)', () => {
    // 3x2 image with pixel values 10*(y*3 + x) + 1 in every channel.
    const img = makeImage(3, 2);
    for (let i = 0; i < 6; i++) img.data.fill(10 * i + 1, i * 3, i * 3 + 3);
    const px = (im: RgbImage) => Array.from({ length: im.width * im.height }, (_, i) => im.data[i * 3]!);
    expect(px(centerCrop(img, 2, 1))).toEqual([1, 11]); // top = (2-1)//2 = 0, left = (3-2)//2 = 0
    expect(px(centerCrop(img, 1, 2))).toEqual([11, 41]); // left = 1
    expect(px(centerCrop(img, 4, 4))).toEqual([0, 0, 0, 0, 0, 1, 11, 21, 0, 31, 41, 51, 0, 0, 0, 0]); // top = -1, left = -1
    expect(px(centerCrop(img, 5, 1))).toEqual([0, 1, 11, 21, 0]);
  });

  it('defaults and errors follow the processor classes', () => {
    const clip = imageProcessorFromHF({ image_processor_type: 'CLIPImageProcessor' });
    expect(clip).toMatchObject({ resize: { shortestEdge: 224 }, centerCrop: { height: 224, width: 224 }, resample: 'bicubic' });
    const siglip = imageProcessorFromHF({ image_processor_type: 'SiglipImageProcessor', size: { height: 384, width: 384 } });
    expect(siglip).toMatchObject({ resize: { height: 384, width: 384 }, centerCrop: null, normalize: { mean: [0.5, 0.5, 0.5] } });
    expect(() => imageProcessorFromHF({ image_processor_type: 'ViTImageProcessor' })).toThrow(/"image_processor_type": expected CLIPImageProcessor or SiglipImageProcessor, got "ViTImageProcessor"/);
    expect(() => imageProcessorFromHF({ image_processor_type: 'CLIPImageProcessor', resample: 0 })).toThrow(/"resample": expected a PIL filter/);
    expect(() => imageProcessorFromHF({ image_processor_type: 'CLIPImageProcessor', image_mean: [1, 2] })).toThrow(/"image_mean": expected a number or 3 numbers, got \[1,2\]/);
  });
});
