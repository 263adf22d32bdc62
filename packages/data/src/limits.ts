// Decompression-bomb guard shared by the PNG and JPEG decoders: the pixel count a header declares is
// checked before any pixel memory is allocated (a 2.6 MB all-zero 30000x30000 PNG otherwise costs ~11 GB).

/** Default largest image decoded: 100 megapixels (a 10000x10000 image; PIL warns from 89 MP). */
export const DEFAULT_MAX_PIXELS = 100_000_000;

export interface ImageLimits {
  /**
   * Largest width x height decoded; larger images are refused from their header. Default
   * DEFAULT_MAX_PIXELS, or the environment variable VLMIX_MAX_IMAGE_PIXELS when set.
   */
  maxPixels?: number;
  /** JPEG: turn the image upright by its Exif Orientation tag, as viewers and PIL's exif_transpose do (default true). */
  exifOrientation?: boolean;
}

/** The limit in force: the option, else VLMIX_MAX_IMAGE_PIXELS, else DEFAULT_MAX_PIXELS. */
export function maxPixels(limits: ImageLimits = {}): number {
  const fromEnv = process.env.VLMIX_MAX_IMAGE_PIXELS;
  const v = limits.maxPixels ?? (fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : DEFAULT_MAX_PIXELS);
  if (!Number.isFinite(v) || v < 1) {
    const src = limits.maxPixels !== undefined ? 'maxPixels' : 'VLMIX_MAX_IMAGE_PIXELS';
    throw new RangeError(`${src}: expected a positive number of pixels, got ${JSON.stringify(limits.maxPixels ?? fromEnv)}`);
  }
  return v;
}

/** Throws `<fail>(message)` when width x height exceeds the limit. */
export function checkPixelLimit(width: number, height: number, limits: ImageLimits, fail: (msg: string) => never): void {
  const limit = maxPixels(limits);
  const n = width * height;
  if (n > limit) {
    fail(`image declares ${width}x${height} = ${(n / 1e6).toFixed(1)} megapixels, above the limit of ${(limit / 1e6).toFixed(1)} ` +
      'megapixels (raise it with the maxPixels option or VLMIX_MAX_IMAGE_PIXELS)');
  }
}
