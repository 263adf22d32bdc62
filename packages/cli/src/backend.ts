/** Backend choice for CLI commands; the choice and its reason are printed once, on stderr. */
import { useBackend } from '@vlmix/backend-native';
import { UsageError } from './args.js';

const NAMES = ['auto', 'vlmix-cpu', 'cpu', 'wasm', 'tensorflow'] as const;
export type BackendName = (typeof NAMES)[number];

export async function chooseBackend(name: string | undefined, err: (s: string) => void): Promise<string> {
  const want = (name ?? 'auto') as BackendName;
  if (!NAMES.includes(want)) throw new UsageError(`--backend: expected one of ${NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  const r = await useBackend(want);
  err(`backend: ${r.backend} (${r.reason})`);
  return r.backend;
}
