export * from './lora.js';
export * from './prefix.js';
export * from './llama-adapter.js';
