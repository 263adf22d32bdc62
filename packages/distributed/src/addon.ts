// Loads build/Release/vlmix_mpi.node (built at install only where MPI is found) without ever throwing.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A posted all-reduce (src/native/addon.cc PendingAllReduce). */
export interface NativePending {
  /** Drives it without blocking; true once the result is in the buffer. */
  test(): boolean;
  /** Blocks until done; throws (code VLMIX_MPI_TIMEOUT) after timeoutMs (0: no limit). */
  wait(timeoutMs?: number): void;
}

/** Functions exported by src/native/addon.cc. `what` names the operation in error messages. */
export interface MpiAddon {
  init(): { rank: number; size: number; library: string; host: string; threadFunneled: boolean };
  finalize(): boolean;
  abort(code: number): void;
  state(): { initialized: boolean; finalized: boolean; broken: string };
  allReduceStart(buf: Float32Array, divisor: number, deterministic: boolean, check: boolean, timeoutMs: number, what: string): NativePending;
  broadcast(buf: ArrayBufferView, root: number, check: boolean, timeoutMs: number, what: string): void;
  allGather(send: ArrayBufferView, recv: ArrayBufferView, check: boolean, timeoutMs: number, what: string): void;
  barrier(timeoutMs: number, what: string): void;
  ncclProbe(candidates: string[]): { available: boolean; reason: string; path?: string; version?: string };
}

let cached: { addon: MpiAddon | null; reason: string } | null = null;

const fromPackage = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/** The addon and a one-line reason (why it loaded or why not). Never throws. */
export function loadMpiAddon(): { addon: MpiAddon | null; reason: string } {
  if (cached) return cached;
  if (process.env.VLMIX_DISABLE_MPI) return (cached = { addon: null, reason: 'VLMIX_DISABLE_MPI is set' });
  // src/ and dist/ both sit one level below the package root.
  const found = ['../build/Release/vlmix_mpi.node'].map(fromPackage).find((p) => existsSync(p));
  if (!found) {
    let why = 'build/Release/vlmix_mpi.node missing';
    try {
      const st = JSON.parse(readFileSync(fromPackage('../build/mpi-build.json'), 'utf8')) as { built: boolean; reason: string };
      if (!st.built) why = `not built at install: ${st.reason}`;
    } catch {
      /* no record: the install script never ran */
    }
    return (cached = { addon: null, reason: `MPI addon unavailable (${why}; rebuild with \`pnpm --filter @vlmix/distributed run build:native\`)` });
  }
  try {
    const addon = createRequire(import.meta.url)(found) as MpiAddon;
    return (cached = { addon, reason: `MPI addon loaded from ${found}` });
  } catch (e) {
    return (cached = { addon: null, reason: `MPI addon failed to load: ${(e as Error).message.split('\n')[0]}` });
  }
}
