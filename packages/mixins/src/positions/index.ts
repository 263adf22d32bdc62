export * from './mrope.js';
export * from './rope.js';
