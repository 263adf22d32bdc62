export * from './lora.js';
export * from './prefix.js';
