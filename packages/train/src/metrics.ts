/**
 * JSONL metrics: one JSON object per line, written with a synchronous write per line so a crash
 * loses at most the line being written.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomicSync } from '@vlmix/core';

export class MetricsWriter {
  private fd: number | null;

  /**
   * Opens `path` for appending. `keepUpToStep`: drop existing lines whose `step` is larger first
   * (a run resumed from an older checkpoint would otherwise log those steps twice).
   */
  constructor(readonly path: string, opts: { keepUpToStep?: number; truncate?: boolean } = {}) {
    mkdirSync(dirname(path), { recursive: true });
    if (opts.truncate) writeFileAtomicSync(path, '');
    else if (opts.keepUpToStep !== undefined && existsSync(path)) {
      const keep = readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => {
          if (!l.trim()) return false;
          try {
            const step = (JSON.parse(l) as { step?: unknown }).step;
            return typeof step !== 'number' || step <= opts.keepUpToStep!;
          } catch {
            return false; // a torn last line from a crash
          }
        });
      writeFileAtomicSync(path, keep.map((l) => l + '\n').join(''));
    }
    this.fd = openSync(path, 'a');
  }

  write(record: object): void {
    if (this.fd === null) throw new Error(`MetricsWriter: ${this.path} is closed`);
    const bytes = Buffer.from(JSON.stringify(record, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)) + '\n');
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Parses a JSONL metrics file (blank and torn lines are skipped). */
export function readMetrics(path: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of readFileSync(path, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      /* torn line */
    }
  }
  return out;
}
