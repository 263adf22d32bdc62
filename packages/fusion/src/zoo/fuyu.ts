/**
 * Fuyu (Adept 2023, type C without an encoder): raw image patches linearly projected straight into the
 * decoder's sequence, a newline embedding after each row of patches (FuyuPatchMixin). Reference names:
 * HF FuyuForCausalLM `vision_embed_tokens` (the newline is the |NEWLINE| token's embedding row there).
 * Any image size, as FuyuImageProcessor: an image larger than the target canvas is scaled down to fit it,
 * normalised with mean = std = 0.5, and padded (value 1.0, bottom and right) to multiples of the patch;
 * it then takes ceil(h/p) x (ceil(w/p) + 1) tokens. Target 64 x 64 here (1080 x 1920 in the reference).
 */
import * as tf from '@tensorflow/tfjs';
import { resize, specialId, toFloatCHW, type RgbImage, type Tokenizer } from '@vlmix/data';
import { FuyuPatchMixin } from '@vlmix/mixins';
import { baseLm, finish, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

/** FuyuImageProcessor's resize rule: no change when the image fits the target, else scaled down to fit. */
export function fuyuFit(height: number, width: number, target: readonly [number, number]): [number, number] {
  const [th, tw] = target;
  if (height <= th && width <= tw) return [height, width];
  const s = Math.min(th / height, tw / width);
  return [Math.max(1, Math.trunc(height * s)), Math.max(1, Math.trunc(width * s))];
}

/** Fuyu's normalisation: mean = std = 0.5 per channel, so (x / 255 - 0.5) / 0.5. */
const FUYU_HALF: readonly [number, number, number] = [0.5, 0.5, 0.5];

/** [1, 3, ceil(h/p)p, ceil(w/p)p]: the normalised image, padding 1.0 at the bottom and right. */
function fuyuPixels(img: RgbImage, p: number): tf.Tensor4D {
  const { width: w, height: h } = img;
  const hp = Math.ceil(h / p) * p;
  const wp = Math.ceil(w / p) * p;
  const chw = toFloatCHW(img, FUYU_HALF, FUYU_HALF);
  const data = new Float32Array(3 * hp * wp).fill(1);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) data.set(chw.subarray((c * h + y) * w, (c * h + y + 1) * w), (c * hp + y) * wp);
  return tf.tensor4d(data, [1, 3, hp, wp]);
}

export function buildFuyu(tok: Tokenizer, opts: RecipeOptions & { imageSize?: number; patchSize?: number; target?: [number, number] } = {}): Vlm {
  const model = baseLm(tok, opts);
  const imageSize = opts.imageSize ?? 32;
  const patch = opts.patchSize ?? 8; // 30 in the reference
  const target = opts.target ?? [64, 64];
  model.addMixin('patches', new FuyuPatchMixin({ imageTokenId: specialId(tok, '<image>'), patchSize: patch }));
  finish(model, opts, ['patches']);
  const tokensFor = (h: number, w: number) => {
    const [fh, fw] = fuyuFit(h, w, target);
    return Math.ceil(fh / patch) * (Math.ceil(fw / patch) + 1);
  };
  const n = imageSize / patch;
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize, imageTokens: tokensFor(...target), usesPixels: false,
    imageTokensFor: (s) => tokensFor(s.image.height, s.image.width),
    extraMedia: (_b, samples) => ({
      pixels: samples.map((s) => {
        const [h, w] = fuyuFit(s.image.height, s.image.width, target);
        return fuyuPixels(h === s.image.height && w === s.image.width ? s.image : resize(s.image, w, h), patch);
      }),
    }),
    description: `Fuyu (C, no encoder): raw ${patch}-px patches of the image at its own size (fit into ${target.join('x')}) -> linear -> tokens, a newline after each row (${n * (n + 1)} for a ${imageSize}-px square)`,
  });
}

export const fuyu: VlmPreset = {
  name: 'fuyu', description: 'Fuyu (type C, no vision encoder): raw patches of any image size -> linear (vision_embed_tokens) -> decoder, newline per patch row', build: buildFuyu,
};
