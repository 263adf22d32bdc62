// Crash-safe file writes: write a uniquely named temp file in the target's directory, fsync it,
// rename it over the target, then fsync the directory. Readers see either the old file or the
// complete new one, never a partial file. On any error the temp file is removed.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

function tempPathFor(path: string): string {
  const tag = `${process.pid}.${Date.now().toString(36)}.${randomBytes(6).toString('hex')}`;
  return join(dirname(path), `.${basename(path)}.${tag}.tmp`);
}

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? new TextEncoder().encode(data) : data;
}

/** Errors that only mean "this platform cannot fsync a directory". */
function ignorableDirSyncError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'EISDIR' || code === 'EPERM' || code === 'EACCES' || code === 'EINVAL' || code === 'ENOTSUP' || code === 'EBADF';
}

async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    if (!ignorableDirSyncError(err)) throw err;
  } finally {
    await fh?.close().catch(() => {});
  }
}

/**
 * Atomically replaces `path` with `data` (a string is written as UTF-8). The temp file lives in
 * the same directory (so the rename cannot cross file systems) and is named
 * `.<basename>.<pid>.<time>.<random>.tmp`. Rejects with the underlying error; the target is then
 * untouched and no temp file is left behind.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = toBytes(data);
  const tmp = tempPathFor(path);
  let created = false;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    created = true;
    try {
      let off = 0;
      while (off < bytes.byteLength) {
        const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off);
        if (bytesWritten <= 0) throw new Error(`writeFileAtomic: no progress writing ${tmp}`);
        off += bytesWritten;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    created = false;
  } catch (err) {
    if (created) await unlink(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** Synchronous variant of writeFileAtomic (same guarantees). */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const bytes = toBytes(data);
  const tmp = tempPathFor(path);
  let created = false;
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    created = true;
    try {
      let off = 0;
      while (off < bytes.byteLength) {
        const n = writeSync(fd, bytes, off, bytes.byteLength - off);
        if (n <= 0) throw new Error(`writeFileAtomicSync: no progress writing ${tmp}`);
        off += n;
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    created = false;
  } catch (err) {
    if (created) {
      try {
        unlinkSync(tmp);
      } catch {
        /* already gone */
      }
    }
    throw err;
  }
  let dfd: number | undefined;
  try {
    dfd = openSync(dirname(path), 'r');
    fsyncSync(dfd);
  } catch (err) {
    if (!ignorableDirSyncError(err)) throw err;
  } finally {
    if (dfd !== undefined) closeSync(dfd);
  }
}
