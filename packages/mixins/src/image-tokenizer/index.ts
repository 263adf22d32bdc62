export * from './vq.js';
