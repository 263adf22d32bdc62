/**
 * 1-D rotary positions (RoPE). They live in @vlmix/core (positions/rope.ts, beside the M-RoPE math)
 * because createLlama adds them and core imports no other vlmix package; the catalogue re-exports them
 * here, next to M-RoPE.
 */
export { RotaryMixin, applyRotaryHalf, applyRotaryInterleaved, rotaryAngles, rotaryInvFreq, type RotaryOptions } from '@vlmix/core';
