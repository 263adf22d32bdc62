export * from './vit.js';
