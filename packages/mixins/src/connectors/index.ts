export * from './projectors.js';
export * from './qformer.js';
export * from './perceiver.js';
export * from './pixel-shuffle.js';
export * from './qwen-resampler.js';
export * from './anyres.js';
