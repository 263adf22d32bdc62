export * from './gated-cross-attention.js';
export * from './visual-expert.js';
export * from './visual-expert-load.js';
export * from './gated-cross-attention-load.js';
export * from './high-res-cross-attention.js';
