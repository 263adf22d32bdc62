// preprocessor_config.json -> the image-processing steps of @vlmix/data (PIL-exact resize, center
// crop, rescale, normalize), for CLIP and SigLIP vision towers.
import { imageProcessorFromHF, preprocessImage, type ImageProcessorConfig, type PixelValues, type RgbImage } from '@vlmix/data';
import { readJsonFile } from './files.js';

export interface ImageProcessor {
  config: ImageProcessorConfig;
  /** pixel_values of one RGB image: float32 [3, H, W], as the HF processor computes them. */
  preprocess(img: RgbImage): PixelValues;
}

/** Reads `<dir>/preprocessor_config.json` (CLIPImageProcessor or SiglipImageProcessor). */
export function loadImageProcessor(dir: string): ImageProcessor {
  const json = readJsonFile(dir, 'preprocessor_config.json');
  let config: ImageProcessorConfig;
  try {
    config = imageProcessorFromHF(json);
  } catch (err) {
    throw new Error(`${(err as Error).message} (in ${dir})`);
  }
  return { config, preprocess: (img) => preprocessImage(img, config) };
}
