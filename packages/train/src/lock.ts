/**
 * One writer per run directory: `<dir>/vlmix.lock` holds the holder's pid, host, start time and
 * command. It is created complete or not at all (written to a temp file, then hard-linked into
 * place, which fails if the lock exists), removed on release, and recognised as stale when its pid
 * no longer runs on this host (a SIGKILLed trainer). A lock from another host is never broken
 * automatically: the error says how to remove it.
 */
import { linkSync, mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { VlmixError, fail } from '@vlmix/core';

export const LOCK_FILE = 'vlmix.lock';

export interface RunLockInfo {
  pid: number;
  host: string;
  startedAt: string;
  /** What the holder runs (e.g. the command line), for the error message. */
  command?: string;
  /** Random tag: release removes the file only if it is still this lock. */
  id: string;
}

/** The run directory is locked by a live trainer. */
export class RunLockedError extends VlmixError {
  override name = 'RunLockedError';

  constructor(readonly path: string, readonly holder: RunLockInfo) {
    const self = holder.pid === process.pid && holder.host === hostname();
    super(
      `run directory ${dirname(path)} is in use by another trainer: pid ${holder.pid}${self ? ' (this process)' : ''} on host ${holder.host}, ` +
        `started ${holder.startedAt}${holder.command ? ` (${holder.command})` : ''}; ` +
        `wait for it to finish or stop it${holder.host === hostname() ? '' : `; if it is no longer running on ${holder.host}, delete ${path}`}`,
    );
  }
}

/** Whether `pid` is a running process on this host (EPERM: it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The lock's holder, or null when the directory is not locked. Throws on an unreadable lock file. */
export function readRunLock(dir: string): RunLockInfo | null {
  const path = join(dir, LOCK_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const info = JSON.parse(text) as RunLockInfo;
    if (Number.isInteger(info.pid) && typeof info.host === 'string' && typeof info.id === 'string') return info;
  } catch {
    /* reported below */
  }
  return fail(`${path}: unreadable lock file (${JSON.stringify(text.slice(0, 80))}); if no trainer is using this directory, delete it`);
}

export class RunLock {
  private held = true;

  constructor(readonly dir: string, readonly info: RunLockInfo) {}

  get path(): string {
    return join(this.dir, LOCK_FILE);
  }

  get isHeld(): boolean {
    return this.held;
  }

  /** Removes the lock file if it is still ours. Idempotent. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    try {
      if (readRunLock(this.dir)?.id === this.info.id) unlinkSync(this.path);
    } catch {
      /* already gone or replaced: nothing of ours to remove */
    }
  }
}

export interface AcquireRunLockOptions {
  command?: string;
  /** Called when a stale lock (dead pid on this host) is taken over. */
  onStale?: (stale: RunLockInfo) => void;
}

/** Locks `dir` (created if needed) for this process, or throws RunLockedError naming the holder. */
export function acquireRunLock(dir: string, opts: AcquireRunLockOptions = {}): RunLock {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  const info: RunLockInfo = {
    pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), id: randomBytes(8).toString('hex'),
    ...(opts.command ? { command: opts.command } : {}),
  };
  const tmp = join(dir, `.${LOCK_FILE}.${process.pid}.${info.id}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(info)}\n`);
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, path); // atomic: fails with EEXIST when the directory is locked
        removeDeadTempFiles(dir);
        return new RunLock(dir, info);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = readRunLock(dir);
      if (!holder) continue; // released meanwhile
      if (holder.host !== info.host || pidAlive(holder.pid)) throw new RunLockedError(path, holder);
      breakStaleLock(dir, holder);
      opts.onStale?.(holder);
    }
    return fail(`${path}: could not take the lock (other processes keep racing for it)`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing to clean */
    }
  }
}

/**
 * Moves a stale lock aside. Between reading it and moving it another process may have replaced it
 * with a live lock; then that lock is put back (link fails if yet another one took the place).
 */
function breakStaleLock(dir: string, stale: RunLockInfo): void {
  const path = join(dir, LOCK_FILE);
  const aside = join(dir, `.${LOCK_FILE}.stale.${process.pid}.${randomBytes(6).toString('hex')}`);
  try {
    renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  let moved: RunLockInfo | null = null;
  try {
    moved = JSON.parse(readFileSync(aside, 'utf8')) as RunLockInfo;
  } catch {
    /* unreadable: treat as the stale one */
  }
  if (moved && moved.id !== stale.id) {
    try {
      linkSync(aside, path);
    } catch {
      /* someone else holds it now; they win */
    }
  }
  unlinkSync(aside);
}

/** Temp files of lock attempts by processes that died in the middle (their pid is in the name). */
function removeDeadTempFiles(dir: string): void {
  for (const f of readdirSync(dir)) {
    const m = /^\.vlmix\.lock\.(?:stale\.)?(\d+)\./.exec(f); // `.${LOCK_FILE}.[stale.]<pid>.`
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) {
      try {
        unlinkSync(join(dir, f));
      } catch {
        /* gone */
      }
    }
  }
}
