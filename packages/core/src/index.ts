/** @vlmix/core: fused ops, hooks, the base transformer, mixins, generation, safetensors. */
import './ops/fused.js';
import './backend.js';

export * as ops from './ops/index.js';
export { kernels } from './ops/index.js';
export * from './errors.js';
export * from './random.js';
export * from './init.js';
export * from './params.js';
export * from './config.js';
export * from './hooks.js';
export * from './context.js';
export * from './mixin.js';
export * from './masks.js';
export * from './kv-cache.js';
export * from './model.js';
export * from './transformer.js';
export * from './generate.js';
export * from './presets.js';
export * from './mixins/rope.js';
export * from './models/gpt2.js';
export * from './models/llama.js';
export * from './models/qwen2.js';
export * from './models/hf-config.js';
export * from './models/weight-map.js';
export * from './models/pretrained.js';
export * from './io/index.js';
export * from './backend.js';
