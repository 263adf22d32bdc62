export * from './vit.js';
export * from './fuyu-patches.js';
export * from './qwen2-vision.js';
