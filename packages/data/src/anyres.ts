// LLaVA-1.6 ("LLaVA-NeXT") any-resolution tiling on the host: pick the grid resolution that keeps most of the
// image (select_best_resolution), resize into it keeping the aspect ratio and pad, cut crop x crop tiles, and
// put the whole image, resized to crop x crop, first (the "base" / thumbnail).
import { resize, type RgbImage } from './image.js';
import { resizePil } from './resample.js';

/**
 * HF's select_best_resolution: the [height, width] of `pinpoints` with the largest effective resolution
 * (pixels of the image after fitting it inside, capped at the original's), ties broken by the least wasted area.
 */
export function selectBestResolution(height: number, width: number, pinpoints: readonly (readonly [number, number])[]): [number, number] {
  if (!pinpoints.length) throw new RangeError('selectBestResolution: pinpoints must not be empty');
  let best: [number, number] = [pinpoints[0]![0], pinpoints[0]![1]];
  let bestEff = -1;
  let bestWaste = Infinity;
  for (const [h, w] of pinpoints) {
    const scale = Math.min(w / width, h / height);
    const dw = Math.floor(width * scale);
    const dh = Math.floor(height * scale);
    const eff = Math.min(dw * dh, width * height);
    const waste = w * h - eff;
    if (eff > bestEff || (eff === bestEff && waste < bestWaste)) {
      best = [h, w];
      bestEff = eff;
      bestWaste = waste;
    }
  }
  return best;
}

/** Resizes keeping the aspect ratio into [h, w] and pads the rest (centred) with `fill`. */
export function resizeAndPad(img: RgbImage, h: number, w: number, fill: readonly [number, number, number] = [0, 0, 0]): RgbImage {
  const scale = Math.min(w / img.width, h / img.height);
  const nw = Math.min(w, Math.ceil(img.width * scale));
  const nh = Math.min(h, Math.ceil(img.height * scale));
  const small = resize(img, nw, nh);
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) out.set(fill, i * 3);
  const x0 = Math.floor((w - nw) / 2);
  const y0 = Math.floor((h - nh) / 2);
  for (let y = 0; y < nh; y++) out.set(small.data.subarray(y * nw * 3, (y + 1) * nw * 3), ((y0 + y) * w + x0) * 3);
  return { width: w, height: h, data: out };
}

export interface AnyResTiles {
  /** [base, tile (0,0), tile (0,1), ...]: each crop x crop. */
  images: RgbImage[];
  /** Tile rows and columns of the chosen resolution. */
  grid: [number, number];
}

/** The crops LLaVA-1.6 feeds its vision tower for one image (base first, then the tiles row by row). */
export function anyResTiles(img: RgbImage, pinpoints: readonly (readonly [number, number])[], crop: number): AnyResTiles {
  const [h, w] = selectBestResolution(img.height, img.width, pinpoints);
  if (h % crop !== 0 || w % crop !== 0) throw new RangeError(`anyResTiles: pinpoint ${h}x${w} is not a multiple of the crop size ${crop}`);
  const canvas = resizeAndPad(img, h, w);
  const images: RgbImage[] = [resize(img, crop, crop)];
  for (let ty = 0; ty < h / crop; ty++) {
    for (let tx = 0; tx < w / crop; tx++) {
      const data = new Uint8Array(crop * crop * 3);
      for (let y = 0; y < crop; y++) data.set(canvas.data.subarray(((ty * crop + y) * w + tx * crop) * 3, ((ty * crop + y) * w + (tx + 1) * crop) * 3), y * crop * 3);
      images.push({ width: crop, height: crop, data });
    }
  }
  return { images, grid: [h / crop, w / crop] };
}

// ------------------------------------------------------------------------------------------ InternVL

export interface DynamicTilingOptions {
  /** Fewest and most tiles (InternVL: 1 and 12). */
  minTiles?: number;
  maxTiles?: number;
  /** Tile side (InternVL: 448). */
  tileSize?: number;
  /** Add the whole image resized to one tile after the tiles, when there is more than one (InternVL: true). */
  thumbnail?: boolean;
}

/**
 * InternVL's `find_closest_aspect_ratio` over the grids (columns, rows) with minTiles <= columns * rows <=
 * maxTiles, tried in order of tile count (ties by columns, then rows): the grid whose aspect ratio is
 * closest to the image's; on an exact tie a larger grid wins when the image has more than half its pixels.
 */
export function internvlGrid(width: number, height: number, opts: DynamicTilingOptions = {}): [number, number] {
  const lo = opts.minTiles ?? 1;
  const hi = opts.maxTiles ?? 12;
  const size = opts.tileSize ?? 448;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && hi >= lo)) throw new RangeError(`internvlGrid: expected integers 1 <= minTiles <= maxTiles, got ${lo} and ${hi}`);
  if (!(width > 0 && height > 0)) throw new RangeError(`internvlGrid: image size must be positive, got ${width}x${height}`);
  const grids: [number, number][] = [];
  for (let i = 1; i <= hi; i++) for (let j = 1; j <= hi; j++) if (i * j >= lo && i * j <= hi) grids.push([i, j]);
  grids.sort((a, b) => a[0] * a[1] - b[0] * b[1] || a[0] - b[0] || a[1] - b[1]);
  const aspect = width / height;
  let best: [number, number] = [1, 1];
  let bestDiff = Infinity;
  for (const g of grids) {
    const d = Math.abs(aspect - g[0] / g[1]);
    if (d < bestDiff) [bestDiff, best] = [d, g];
    else if (d === bestDiff && width * height > 0.5 * size * size * g[0] * g[1]) best = g;
  }
  return best;
}

/** How many images internvlTiles gives for a width x height image: the grid's tiles, and the thumbnail when there is more than one. */
export function internvlTileCount(width: number, height: number, opts: DynamicTilingOptions = {}): number {
  const [cols, rows] = internvlGrid(width, height, opts);
  return cols * rows + ((opts.thumbnail ?? true) && cols * rows > 1 ? 1 : 0);
}

/**
 * InternVL's `dynamic_preprocess`: the image resized (PIL bicubic) to the chosen grid of tiles, cut into
 * tiles row by row, then the thumbnail when there is more than one tile. Each image is tileSize square.
 */
export function internvlTiles(img: RgbImage, opts: DynamicTilingOptions = {}): { images: RgbImage[]; grid: [number, number] } {
  const size = opts.tileSize ?? 448;
  const [cols, rows] = internvlGrid(img.width, img.height, opts);
  const canvas = resizePil(img, cols * size, rows * size);
  const images: RgbImage[] = [];
  for (let ty = 0; ty < rows; ty++) {
    for (let tx = 0; tx < cols; tx++) {
      const data = new Uint8Array(size * size * 3);
      for (let y = 0; y < size; y++) data.set(canvas.data.subarray(((ty * size + y) * canvas.width + tx * size) * 3, ((ty * size + y) * canvas.width + (tx + 1) * size) * 3), y * size * 3);
      images.push({ width: size, height: size, data });
    }
  }
  if ((opts.thumbnail ?? true) && images.length > 1) images.push(resizePil(img, size, size));
  return { images, grid: [cols, rows] };
}
