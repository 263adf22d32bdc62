export * from './gated-cross-attention.js';
export * from './visual-expert.js';
export * from './visual-expert-load.js';
