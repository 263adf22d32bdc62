/** Backend choice for CLI commands; the choice and its reason are printed once, on stderr. */
import { useBackend } from '@vlmix/backend-native';
import { UsageError } from './args.js';

/** vlmix-cuda is experimental (compiled, not yet verified on a GPU): asked for by name, it fails with the addon's reason where it cannot run. */
export const BACKEND_NAMES = ['auto', 'vlmix-cpu', 'vlmix-cuda', 'cpu', 'wasm', 'tensorflow'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export async function chooseBackend(name: string | undefined, err: (s: string) => void): Promise<string> {
  const want = (name ?? 'auto') as BackendName;
  if (!BACKEND_NAMES.includes(want)) throw new UsageError(`--backend: expected one of ${BACKEND_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  let r: { backend: string; reason: string };
  try {
    r = await useBackend(want);
  } catch (e) {
    // useBackend's message already says which backend and why ("backend 'vlmix-cuda' is unavailable: ...").
    throw new Error(`--backend ${want}: ${(e as Error).message}`);
  }
  err(`backend: ${r.backend} (${r.reason})`);
  return r.backend;
}
