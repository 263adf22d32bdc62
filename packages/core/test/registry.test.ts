// Kernel registration order (native, then composite, then fallback) and the warnings when something
// replaces an existing registration. Runs on a made-up backend name: registration needs no backend.
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ops } from '../src/index.js';

const BE = 'vlmix-registry-test';
const K = ops.kernels;
const fn = (tag: string): tf.KernelFunc => Object.assign(() => { throw new Error(tag); }, { tag });
const fallbackFor = vi.fn((name: string) => fn(`fallback ${name}`));

let warn: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
});
afterEach(() => warn.mockRestore());
afterAll(() => {
  for (const k of tf.getKernelsForBackend(BE)) tf.unregisterKernel(k.kernelName, BE);
});

describe('kernel registry', () => {
  const nativeLn = fn('native layer norm');
  const nativeNeg = fn('native neg');

  it('registers native kernels, then composites for the fused kernels still missing, then fallbacks', () => {
    const added = ops.setupBackendKernels(BE, { native: [[K.LayerNorm, nativeLn], ['Neg', nativeNeg]], fallback: fallbackFor });
    expect(warn).not.toHaveBeenCalled();
    expect(tf.getKernel(K.LayerNorm, BE)!.kernelFunc).toBe(nativeLn);
    expect(ops.kernelLayer(K.LayerNorm, BE)).toBe('native');
    expect(ops.kernelLayer('Neg', BE)).toBe('native');
    // Every other fused kernel gets its composite body, never the fallback (tfjs 'cpu' has them all too).
    for (const name of K.ALL_FUSED_KERNELS.filter((n) => n !== K.LayerNorm)) expect(ops.kernelLayer(name, BE)).toBe('composite');
    expect(fallbackFor).not.toHaveBeenCalledWith(K.RmsNorm);
    expect(ops.kernelLayer('Cumsum', BE)).toBe('fallback');
    expect(ops.kernelLayer('Neg', BE)).toBe('native');
    expect(added).toEqual({
      native: 2,
      composite: K.ALL_FUSED_KERNELS.length - 1,
      fallback: tf.getKernelsForBackend('cpu').length - K.ALL_FUSED_KERNELS.length - 1,
    });
    expect(ops.nativeFusedKernels(BE)).toEqual([K.LayerNorm]);
  });

  it('registers once: a second call only adds what is new, silently', () => {
    const again = ops.setupBackendKernels(BE, { native: [[K.LayerNorm, nativeLn], ['Neg', nativeNeg]], fallback: fallbackFor });
    expect(again).toEqual({ native: 0, composite: 0, fallback: 0 });
    tf.registerKernel({ kernelName: 'VlmixRegistryTestKernel', backendName: 'cpu', kernelFunc: fn('cpu test') });
    try {
      expect(ops.setupBackendKernels(BE, { fallback: fallbackFor })).toEqual({ native: 0, composite: 0, fallback: 1 });
      expect(ops.kernelLayer('VlmixRegistryTestKernel', BE)).toBe('fallback');
    } finally {
      tf.unregisterKernel('VlmixRegistryTestKernel', 'cpu');
    }
    expect(warn).not.toHaveBeenCalled();
  });

  it('warns when a native kernel arrives after the composite (the order was broken), and takes it', () => {
    const lateRms = fn('late native rms norm');
    ops.setupBackendKernels(BE, { native: [[K.RmsNorm, lateRms]] });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toBe(`vlmix: kernel '${K.RmsNorm}' on backend '${BE}': the native kernel replaces the composite kernel ` +
      '(registration order is native, then composite, then fallback)');
    expect(ops.kernelLayer(K.RmsNorm, BE)).toBe('native');
    expect(tf.getKernel(K.RmsNorm, BE)!.kernelFunc).toBe(lateRms);
  });

  it('warns when a registration of ours was replaced from outside (at the next setup)', () => {
    const foreign = fn('foreign gelu');
    tf.registerKernel({ kernelName: K.Gelu, backendName: BE, kernelFunc: foreign }); // tfjs warns too
    warn.mockClear();
    ops.ensureFusedKernels(BE); // composites are complete: the fast path checks nothing
    expect(warn).not.toHaveBeenCalled();
    ops.setupBackendKernels(BE);
    expect(warn).toHaveBeenCalledWith(`vlmix: kernel '${K.Gelu}' on backend '${BE}': our composite kernel was replaced by a kernel registered outside vlmix`);
    expect(ops.kernelLayer(K.Gelu, BE)).toBe('other');
    expect(tf.getKernel(K.Gelu, BE)!.kernelFunc).toBe(foreign);
    expect(ops.nativeFusedKernels(BE).sort()).toEqual([K.Gelu, K.LayerNorm, K.RmsNorm].sort());
    warn.mockClear();
    ops.setupBackendKernels(BE);
    expect(warn).not.toHaveBeenCalled(); // said once
  });
});
