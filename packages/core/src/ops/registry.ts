/**
 * Kernel registration, once per backend and in one fixed order:
 *   1. native    — what a backend package implements itself (e.g. @vlmix/backend-native for vlmix-cpu);
 *   2. composite — every vlmix fused kernel still missing runs its composite body (bodies.ts);
 *   3. fallback  — for backends that supply one, every tfjs 'cpu' kernel still missing runs through it
 *                  (vlmix-cpu copies the inputs to tfjs 'cpu' and counts the call).
 * A later layer only fills gaps. Whatever replaces an existing registration warns, naming the kernel,
 * the backend and both sides: a native kernel registered over a composite or a fallback (the order was
 * broken), or a tf.registerKernel from elsewhere over one of ours (seen at the next setup call).
 */
import * as tf from '@tensorflow/tfjs';
import { ALL_FUSED_KERNELS } from './kernel-names.js';
import { compositeKernelFunc } from './bodies.js';

export type KernelLayer = 'native' | 'composite' | 'fallback';

export interface BackendKernels {
  /** The backend's own kernels, registered first. */
  native?: ReadonlyArray<readonly [kernelName: string, kernelFunc: tf.KernelFunc]>;
  /** Runs a tfjs 'cpu' kernel for this backend; registered for every 'cpu' kernel still missing, last. */
  fallback?: (kernelName: string) => tf.KernelFunc;
}

interface Registration {
  layer: KernelLayer;
  kernelFunc: tf.KernelFunc;
}

/** What we registered, per backend and kernel name. */
const ours = new Map<string, Map<string, Registration>>();
/** Backends whose composite layer is complete (the fast path of ensureComposites). */
const compositesDone = new Set<string>();

function warn(message: string): void {
  console.warn(`vlmix: ${message}`);
}

function describe(backendName: string, kernelName: string): string {
  const reg = ours.get(backendName)?.get(kernelName);
  const current = tf.getKernel(kernelName, backendName);
  if (!current) return 'nothing';
  return reg && reg.kernelFunc === current.kernelFunc ? `the ${reg.layer} kernel` : 'a kernel registered outside vlmix';
}

function register(backendName: string, kernelName: string, kernelFunc: tf.KernelFunc, layer: KernelLayer): void {
  const mine = ours.get(backendName) ?? new Map<string, Registration>();
  ours.set(backendName, mine);
  const current = tf.getKernel(kernelName, backendName);
  if (current) {
    if (current.kernelFunc === kernelFunc) return;
    warn(`kernel '${kernelName}' on backend '${backendName}': the ${layer} kernel replaces ${describe(backendName, kernelName)} ` +
      '(registration order is native, then composite, then fallback)');
    tf.unregisterKernel(kernelName, backendName); // registerKernel would add tfjs's own, vaguer warning
  }
  tf.registerKernel({ kernelName, backendName, kernelFunc });
  mine.set(kernelName, { layer, kernelFunc });
}

/** Warns (once) for each of our registrations that something else has replaced since. */
function checkReplaced(backendName: string): void {
  for (const [kernelName, reg] of ours.get(backendName) ?? []) {
    const current = tf.getKernel(kernelName, backendName);
    if (current?.kernelFunc === reg.kernelFunc) continue;
    warn(`kernel '${kernelName}' on backend '${backendName}': our ${reg.layer} kernel was ${current ? 'replaced by a kernel registered outside vlmix' : 'unregistered'}`);
    ours.get(backendName)!.delete(kernelName);
  }
}

/** Registers the composite body of every fused kernel the backend lacks; returns how many. */
function ensureComposites(backendName: string): number {
  if (compositesDone.has(backendName)) return 0;
  let added = 0;
  for (const name of ALL_FUSED_KERNELS) {
    if (tf.getKernel(name, backendName)) continue;
    register(backendName, name, compositeKernelFunc(name), 'composite');
    added++;
  }
  compositesDone.add(backendName);
  return added;
}

/**
 * Sets up a backend's kernels in the fixed order (native, composite, fallback). Calling it again
 * registers only what is new (e.g. 'cpu' kernels another library registered since) and warns about
 * registrations replaced in between. Returns how many kernels each layer added.
 */
export function setupBackendKernels(backendName: string, kernels: BackendKernels = {}): Record<KernelLayer, number> {
  checkReplaced(backendName);
  const added: Record<KernelLayer, number> = { native: 0, composite: 0, fallback: 0 };
  for (const [kernelName, kernelFunc] of kernels.native ?? []) {
    if (ours.get(backendName)?.get(kernelName)?.kernelFunc === kernelFunc) continue;
    register(backendName, kernelName, kernelFunc, 'native');
    added.native++;
  }
  if (added.native) compositesDone.delete(backendName);
  added.composite = ensureComposites(backendName);
  if (kernels.fallback) {
    for (const { kernelName } of tf.getKernelsForBackend('cpu')) {
      if (tf.getKernel(kernelName, backendName)) continue;
      register(backendName, kernelName, kernels.fallback(kernelName), 'fallback');
      added.fallback++;
    }
  }
  return added;
}

/** Registers composite bodies for the fused kernels a backend lacks (cheap once done). */
export function ensureFusedKernels(backendName: string = tf.getBackend()): void {
  if (!compositesDone.has(backendName)) setupBackendKernels(backendName);
}

/** Which layer registered `kernelName` on a backend: ours, 'other' (registered outside vlmix) or undefined. */
export function kernelLayer(kernelName: string, backendName: string): KernelLayer | 'other' | undefined {
  const current = tf.getKernel(kernelName, backendName);
  if (!current) return undefined;
  const reg = ours.get(backendName)?.get(kernelName);
  return reg && reg.kernelFunc === current.kernelFunc ? reg.layer : 'other';
}

/** Which fused kernels run natively (not as composite bodies) on a backend. */
export function nativeFusedKernels(backendName: string = tf.getBackend()): string[] {
  return ALL_FUSED_KERNELS.filter((n) => {
    const layer = kernelLayer(n, backendName);
    return layer === 'native' || layer === 'other';
  });
}
