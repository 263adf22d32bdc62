/** @vlmix/fusion: the four fusion types as short recipes of mixins, their tiny presets, and the training recipe (trainVlm, evaluate, loadRun). */
export * from './vlm.js';
export * from './common.js';
export * from './tokenizer.js';
export * from './type-a.js';
export * from './type-b.js';
export * from './type-c.js';
export * from './type-d.js';
export * from './vq-pretrain.js';
export * from './presets.js';
export * from './run/index.js';
export * from './zoo/index.js';
export * from './small.js';
export * from './save.js';
