export * from './safetensors.js';
export * from './atomic.js';
export * from './state-dict.js';
export * from './sharded.js';
export {
  float32ToFloat16Bits,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  bfloat16BitsToFloat32,
} from './half.js';
