/** @vlmix/mixins: the catalogue of fusion components, each a mixin or a module a mixin owns. */
export * from './common.js';
export * from './weights.js';
export * from './vision/index.js';
export * from './connectors/index.js';
export * from './deep/index.js';
export * from './positions/index.js';
export * from './image-tokenizer/index.js';
export * from './peft/index.js';
import './registry.js';
