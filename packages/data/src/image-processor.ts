// The Hugging Face image processors of CLIP and SigLIP (the "slow", PIL-based ones), step by step:
//   CLIP:   resize the shortest edge to size.shortest_edge (bicubic, PIL), center crop to crop_size,
//           rescale by 1/255, normalize with OpenAI's mean/std;
//   SigLIP: resize to size.height x size.width (bicubic, PIL), rescale, normalize with mean = std = 0.5.
// Each step matches transformers' image_transforms: get_resize_output_image_size (the long edge is
// int(size * long / short)), center_crop (offsets (orig - crop) // 2, zero padding when the crop is
// larger), rescale (uint8 * scale in float64, then float32), normalize ((x - mean) / std in float32).
import { CLIP_MEAN, CLIP_STD, assertRgbImage, makeImage, type RgbImage } from './image.js';
import { PIL_RESAMPLE, resizePil, type ResampleFilter } from './resample.js';

export type ResizeSpec = { shortestEdge: number } | { height: number; width: number };

export interface ImageProcessorConfig {
  /** null: no resize. */
  resize: ResizeSpec | null;
  resample: ResampleFilter;
  /** null: no center crop. */
  centerCrop: { height: number; width: number } | null;
  /** Multiply uint8 values by this (1/255); null: keep 0..255. */
  rescaleFactor: number | null;
  /** Per-channel mean and std; null: no normalization. */
  normalize: { mean: [number, number, number]; std: [number, number, number] } | null;
}

/** CLIPImageProcessor's defaults. */
export const CLIP_PROCESSOR: ImageProcessorConfig = {
  resize: { shortestEdge: 224 }, resample: 'bicubic', centerCrop: { height: 224, width: 224 },
  rescaleFactor: 1 / 255, normalize: { mean: [...CLIP_MEAN], std: [...CLIP_STD] },
};

/** SiglipImageProcessor's defaults. */
export const SIGLIP_PROCESSOR: ImageProcessorConfig = {
  resize: { height: 224, width: 224 }, resample: 'bicubic', centerCrop: null,
  rescaleFactor: 1 / 255, normalize: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
};

const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

function bad(field: string, expected: string, got: unknown): never {
  throw new Error(`preprocessor_config.json: "${field}": expected ${expected}, got ${JSON.stringify(got)}`);
}

/** HF get_size_dict: an int is a shortest edge (default_to_square false) or a square (true). */
function sizeDict(field: string, v: unknown, square: boolean): ResizeSpec {
  if (posInt(v)) return square ? { height: v, width: v } : { shortestEdge: v };
  const o = (v ?? {}) as Record<string, unknown>;
  if (posInt(o.shortest_edge) && o.longest_edge === undefined) return { shortestEdge: o.shortest_edge };
  if (posInt(o.height) && posInt(o.width)) return { height: o.height, width: o.width };
  return bad(field, 'a positive integer, {shortest_edge} or {height, width}', v);
}

function triple(field: string, v: unknown): [number, number, number] {
  if (typeof v === 'number') return [v, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return v as [number, number, number];
  return bad(field, 'a number or 3 numbers', v);
}

/**
 * The processing steps of a preprocessor_config.json (CLIPImageProcessor or SiglipImageProcessor;
 * absent fields take that class's defaults). Other processor types are an error naming the type.
 */
export function imageProcessorFromHF(json: Record<string, unknown>): ImageProcessorConfig {
  const type = String(json.image_processor_type ?? json.feature_extractor_type ?? '');
  let base: ImageProcessorConfig;
  if (/^CLIP(ImageProcessor|FeatureExtractor)(Fast)?$/.test(type)) base = CLIP_PROCESSOR;
  else if (/^Siglip(ImageProcessor)(Fast)?$/.test(type)) base = SIGLIP_PROCESSOR;
  else return bad('image_processor_type', 'CLIPImageProcessor or SiglipImageProcessor', type || undefined);
  const clip = base === CLIP_PROCESSOR;
  const flag = (k: string, d: boolean) => {
    const v = json[k];
    if (v === undefined || v === null) return d;
    if (typeof v !== 'boolean') bad(k, 'true or false', v);
    return v;
  };
  const r = json.resample ?? 3;
  const resample = typeof r === 'number' ? PIL_RESAMPLE[r] : undefined;
  if (!resample || resample === 'nearest') bad('resample', 'a PIL filter 1..5 (nearest is not supported)', r);
  const rescale = json.rescale_factor ?? 1 / 255;
  if (typeof rescale !== 'number' || !Number.isFinite(rescale)) bad('rescale_factor', 'a number', rescale);
  return {
    resize: flag('do_resize', true) ? (json.size !== undefined ? sizeDict('size', json.size, !clip) : base.resize) : null,
    resample,
    centerCrop: flag('do_center_crop', clip)
      ? (json.crop_size !== undefined ? (sizeDict('crop_size', json.crop_size, true) as { height: number; width: number }) : base.centerCrop ?? bad('crop_size', 'a size', undefined))
      : null,
    rescaleFactor: flag('do_rescale', true) ? rescale : null,
    normalize: flag('do_normalize', true)
      ? { mean: json.image_mean !== undefined ? triple('image_mean', json.image_mean) : base.normalize!.mean, std: json.image_std !== undefined ? triple('image_std', json.image_std) : base.normalize!.std }
      : null,
  };
}

/** HF get_resize_output_image_size: the output {width, height} of a resize spec for a w x h image. */
export function resizeOutputSize(width: number, height: number, spec: ResizeSpec): { width: number; height: number } {
  if ('height' in spec) return { width: spec.width, height: spec.height };
  const s = spec.shortestEdge;
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((s * long) / short); // Python int(): truncation
  return width <= height ? { width: s, height: newLong } : { width: newLong, height: s };
}

/**
 * HF center_crop: offsets (orig - crop) // 2 (floor); where the crop is larger than the image, the
 * image is first padded with zeros, ceil((crop - orig) / 2) before, the rest after.
 */
export function centerCrop(img: RgbImage, width: number, height: number): RgbImage {
  assertRgbImage(img, 'centerCrop: input');
  if (!posInt(width) || !posInt(height)) throw new RangeError(`centerCrop: width and height must be positive integers, got ${width}x${height}`);
  const top = Math.floor((img.height - height) / 2);
  const left = Math.floor((img.width - width) / 2);
  // HF pads by ceil((crop - orig) / 2) before, which puts output pixel (y, x) at image pixel
  // (top + y, left + x) in every case; outside the image it is the padding's zero.
  const out = makeImage(width, height);
  for (let y = 0; y < height; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= img.height) continue;
    const x0 = Math.max(0, -left);
    const x1 = Math.min(width, img.width - left);
    if (x1 > x0) out.data.set(img.data.subarray((sy * img.width + left + x0) * 3, (sy * img.width + left + x1) * 3), (y * width + x0) * 3);
  }
  return out;
}

export interface PixelValues {
  /** float32 [3, height, width] (channel-first, as HF's pixel_values). */
  data: Float32Array;
  width: number;
  height: number;
}

/**
 * Runs the steps of `cfg` on an RGB image and returns pixel_values as HF computes them: the rescale
 * is uint8 * factor rounded to float32, the normalization (x - mean) / std in float32 arithmetic.
 */
export function preprocessImage(img: RgbImage, cfg: ImageProcessorConfig): PixelValues {
  assertRgbImage(img, 'preprocessImage: input');
  let im = img;
  if (cfg.resize) {
    const { width, height } = resizeOutputSize(im.width, im.height, cfg.resize);
    im = resizePil(im, width, height, cfg.resample);
  }
  if (cfg.centerCrop) im = centerCrop(im, cfg.centerCrop.width, cfg.centerCrop.height);
  const n = im.width * im.height;
  const out = new Float32Array(3 * n);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const mean = cfg.normalize ? f(cfg.normalize.mean[c]!) : 0;
    const std = cfg.normalize ? f(cfg.normalize.std[c]!) : 1;
    for (let i = 0; i < n; i++) {
      const v = im.data[i * 3 + c]!;
      const x = cfg.rescaleFactor === null ? v : f(v * cfg.rescaleFactor);
      out[c * n + i] = cfg.normalize ? f(f(x - mean) / std) : x;
    }
  }
  return { data: out, width: im.width, height: im.height };
}
