// @vlmix/data: images (PNG/JPEG decode, resize, normalise), datasets (synthetic shapes QA,
// CogVLM-SFT folder format), tokenizers (byte, BPE) and QA formatting/collation.
// Everything here yields plain typed arrays; no tfjs dependency.
export * from './image.js';
export * from './resample.js';
export * from './image-processor.js';
export * from './png.js';
export * from './jpeg.js';
export * from './decode.js';
export * from './limits.js';
export * from './synthetic.js';
export * from './folder.js';
export * from './tokenizer.js';
export * from './bpe.js';
export * from './format.js';
export { tokenizerFromJSON } from './tokenizer-json.js';
export * from './anyres.js';
export * from './decode-pool.js';
