export * from './vit.js';
export * from './fuyu-patches.js';
