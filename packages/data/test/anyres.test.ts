// LLaVA-1.6 any-resolution tiling on the host, against hand-computed cases of HF's select_best_resolution.
import { describe, expect, it } from 'vitest';
import { anyResTiles, resize, resizeAndPad, selectBestResolution } from '../src/index.js';

const PIN: [number, number][] = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]];

describe('any-resolution tiling', () => {
  it('selectBestResolution: most effective pixels, then least waste (HF select_best_resolution)', () => {
    // 336x336: every pinpoint keeps all 112,896 pixels; 336x672 wastes the least
    expect(selectBestResolution(336, 336, PIN)).toEqual([336, 672]);
    // 600x800 (h x w): 672x672 keeps 672*504 = 338,688 pixels, more than any other
    expect(selectBestResolution(600, 800, PIN)).toEqual([672, 672]);
    // a tall 1000x300: 1008x336 keeps it all at scale 1.008 (capped at 300,000) with the least waste
    expect(selectBestResolution(1000, 300, PIN)).toEqual([1008, 336]);
    expect(() => selectBestResolution(1, 1, [])).toThrow('selectBestResolution: pinpoints must not be empty');
  });

  it('tiles: the base image first, then the padded canvas cut row by row', () => {
    const w = 6;
    const h = 4;
    const img = { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 7) % 251) };
    const t = anyResTiles(img, [[4, 8]], 4);
    expect(t.grid).toEqual([1, 2]);
    expect(t.images).toHaveLength(3);
    expect(t.images[0]).toEqual(resize(img, 4, 4));
    const canvas = resizeAndPad(img, 4, 8);
    for (let y = 0; y < 4; y++) {
      expect(Array.from(t.images[2]!.data.subarray(y * 12, y * 12 + 12))).toEqual(Array.from(canvas.data.subarray((y * 8 + 4) * 3, (y * 8 + 8) * 3)));
    }
    expect(() => anyResTiles(img, [[6, 8]], 4)).toThrow('anyResTiles: pinpoint 6x8 is not a multiple of the crop size 4');
  });
});

describe('InternVL dynamic tiling (dynamic_preprocess)', () => {
  it('chooses the grid InternVL does (cases computed with its find_closest_aspect_ratio in Python)', async () => {
    const { internvlGrid } = await import('../src/anyres.js');
    const cases: [number, number, [number, number]][] = [
      [800, 600, [4, 3]], [448, 448, [1, 1]], [1000, 1000, [3, 3]], [1920, 1080, [4, 2]], [300, 1200, [1, 4]],
      [500, 100, [5, 1]], [32, 32, [1, 1]], [64, 64, [1, 1]], [900, 450, [2, 1]], [600, 800, [3, 4]],
    ];
    for (const [w, h, g] of cases) expect(internvlGrid(w, h), `${w}x${h}`).toEqual(g);
    expect(internvlGrid(64, 32, { maxTiles: 6, tileSize: 32 })).toEqual([2, 1]);
    expect(() => internvlGrid(10, 10, { minTiles: 3, maxTiles: 2 })).toThrow(/1 <= minTiles <= maxTiles, got 3 and 2/);
  });

  it('tiles row by row from the bicubic-resized canvas, then the thumbnail', async () => {
    const { internvlTiles } = await import('../src/anyres.js');
    const { resizePil } = await import('../src/resample.js');
    const img = { width: 64, height: 32, data: Uint8Array.from({ length: 64 * 32 * 3 }, (_, i) => (i * 7) % 251) };
    const t = internvlTiles(img, { tileSize: 16, maxTiles: 6 });
    expect(t.grid).toEqual([2, 1]);
    expect(t.images).toHaveLength(3); // 2 tiles + thumbnail
    const canvas = resizePil(img, 32, 16);
    const px = (im: { width: number; data: Uint8Array }, x: number, y: number) => Array.from(im.data.subarray((y * im.width + x) * 3, (y * im.width + x) * 3 + 3));
    expect(px(t.images[1]!, 3, 5)).toEqual(px(canvas, 16 + 3, 5)); // second tile = right half
    expect(Array.from(t.images[2]!.data)).toEqual(Array.from(resizePil(img, 16, 16).data));
    expect(internvlTiles({ width: 16, height: 16, data: new Uint8Array(768) }, { tileSize: 16 }).images).toHaveLength(1); // one tile: no thumbnail
  });

  it('internvlTileCount is the number of images internvlTiles gives, thumbnail rule included', async () => {
    const { internvlTileCount, internvlTiles } = await import('../src/anyres.js');
    for (const [w, h, opts] of [[64, 32, { tileSize: 16, maxTiles: 6 }], [16, 16, { tileSize: 16 }], [100, 10, { tileSize: 16, maxTiles: 4 }], [64, 32, { tileSize: 16, thumbnail: false }]] as const) {
      const img = { width: w, height: h, data: new Uint8Array(w * h * 3) };
      expect(internvlTileCount(w, h, opts), `${w}x${h}`).toBe(internvlTiles(img, opts).images.length);
    }
    expect(internvlTileCount(64, 32, { tileSize: 16, maxTiles: 6 })).toBe(3);
  });
});
