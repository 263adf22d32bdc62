export * from './mrope.js';
