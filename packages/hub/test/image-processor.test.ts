import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeImage } from '@vlmix/data';
import { loadImageProcessor } from '../src/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmix-hub-img-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('loadImageProcessor (preprocessor_config.json)', () => {
  it("reads openai/clip-vit-large-patch14-336's fields and gives [3, 336, 336] pixel values", () => {
    // The fields of that model's preprocessor_config.json (legacy int sizes).
    writeFileSync(join(tmp, 'preprocessor_config.json'), JSON.stringify({
      crop_size: 336, do_center_crop: true, do_normalize: true, do_resize: true,
      feature_extractor_type: 'CLIPFeatureExtractor', image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_std: [0.26862954, 0.26130258, 0.27577711], resample: 3, size: 336,
    }));
    const p = loadImageProcessor(tmp);
    expect(p.config).toMatchObject({ resize: { shortestEdge: 336 }, centerCrop: { height: 336, width: 336 }, resample: 'bicubic' });
    const white = p.preprocess(makeImage(500, 400, [255, 255, 255]));
    expect([white.width, white.height, white.data.length]).toEqual([336, 336, 3 * 336 * 336]);
    // A flat image stays flat through the resize: (1 - mean) / std per channel, in float32.
    expect(white.data[0]).toBe(Math.fround(Math.fround(1 - Math.fround(0.48145466)) / Math.fround(0.26862954)));
  });

  it('names the folder when the processor type is not supported', () => {
    writeFileSync(join(tmp, 'preprocessor_config.json'), JSON.stringify({ image_processor_type: 'BlipImageProcessor' }));
    expect(() => loadImageProcessor(tmp)).toThrow(new RegExp(`got "BlipImageProcessor" \\(in ${tmp}\\)`));
  });
});
