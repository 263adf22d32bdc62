// A fault-injection seam for file writes, usable in a test process and in a child process alike:
// it replaces node:fs/promises' `open` (what writeFileAtomic uses) and re-syncs the ESM bindings, so
// every module that imported `open` sees the faulty one. Writes to matching paths then fail with an
// errno (ENOSPC, EIO, EROFS, ...), at open or after some bytes, SIGKILL the process mid-write, or
// just take `delayMs` longer (to hold a process inside a checkpoint write).
import { createRequire, syncBuiltinESMExports } from 'node:module';
import type { FileHandle } from 'node:fs/promises';

const require = createRequire(import.meta.url);
const fsp = require('node:fs/promises') as typeof import('node:fs/promises');
const realOpen = fsp.open;

export interface WriteFault {
  /** Which files (the temp files of writeFileAtomic are named `.<target>.<pid>...tmp`); a string is a RegExp source (JSON-safe). */
  match: RegExp | string;
  /** An errno code to fail with, 'SIGKILL' to kill this process, or 'delay' (wait delayMs, then write normally). */
  fault: 'ENOSPC' | 'EIO' | 'EROFS' | 'EACCES' | 'SIGKILL' | 'delay';
  delayMs?: number;
  /** Fail at open (undefined) or after writing this many bytes. */
  afterBytes?: number;
  /** Skip this many matching opens first (default 0). */
  skip?: number;
}

const ERRNO: Record<string, [number, string]> = {
  ENOSPC: [-28, 'no space left on device'], EIO: [-5, 'i/o error'], EROFS: [-30, 'read-only file system'], EACCES: [-13, 'permission denied'],
};

function errnoError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  const [errno, text] = ERRNO[code]!;
  return Object.assign(new Error(`${code}: ${text}, ${syscall} '${path}'`), { code, errno, syscall, path });
}

function strike(f: WriteFault, syscall: string, path: string): never {
  if (f.fault === 'SIGKILL') {
    process.kill(process.pid, 'SIGKILL');
    // SIGKILL is delivered before kill() returns for the calling process; never reached.
  }
  throw errnoError(f.fault, syscall, path);
}

/** Installs the fault; returns a function that removes it. `hits()` counts faults struck. */
export function injectWriteFault(f: WriteFault): { restore: () => void; hits: () => number } {
  let seen = 0;
  let struck = 0;
  const match = typeof f.match === 'string' ? new RegExp(f.match) : f.match;
  const faulty = async (path: Parameters<typeof realOpen>[0], flags?: Parameters<typeof realOpen>[1], mode?: Parameters<typeof realOpen>[2]) => {
    const p = String(path);
    const writing = typeof flags === 'string' && /[wa]/.test(flags);
    if (!writing || !match.test(p) || seen++ < (f.skip ?? 0)) return realOpen(path, flags, mode);
    if (f.fault === 'delay') {
      struck++;
      await new Promise((r) => setTimeout(r, f.delayMs ?? 1000));
      return realOpen(path, flags, mode);
    }
    if (f.afterBytes === undefined) {
      struck++;
      strike(f, 'open', p);
    }
    const fh: FileHandle = await realOpen(path, flags, mode);
    let written = 0;
    const write = fh.write.bind(fh) as (b: Uint8Array, o?: number, l?: number) => Promise<{ bytesWritten: number; buffer: Uint8Array }>;
    (fh as unknown as { write: unknown }).write = async (b: Uint8Array, o = 0, l = b.byteLength - o) => {
      const room = f.afterBytes! - written;
      if (room <= 0 || l > room) {
        if (room > 0) await write(b, o, room);
        struck++;
        strike(f, 'write', p);
      }
      written += l;
      return write(b, o, l);
    };
    return fh;
  };
  fsp.open = faulty as typeof realOpen;
  syncBuiltinESMExports();
  return {
    restore: () => {
      fsp.open = realOpen;
      syncBuiltinESMExports();
    },
    hits: () => struck,
  };
}

/** In a child process: installs the fault described by the env variable VLMIX_TEST_WRITE_FAULT (JSON), if set. */
export function injectWriteFaultFromEnv(): void {
  const spec = process.env.VLMIX_TEST_WRITE_FAULT;
  if (spec) injectWriteFault(JSON.parse(spec) as WriteFault);
}
