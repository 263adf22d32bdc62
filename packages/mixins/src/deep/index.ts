export * from './gated-cross-attention.js';
export * from './visual-expert.js';
