export * from './vq.js';
export * from './vqgan.js';
export * from './movq.js';
