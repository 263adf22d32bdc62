export * from './vq.js';
export * from './vqgan.js';
