// Test helpers that damage checkpoint files the way disks and people do.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

/** Inverts `count` consecutive bytes at `at` (a fraction of the file's length, default the middle). */
export function flipBytes(path: string, count: number, at = 0.5): void {
  const b = readFileSync(path);
  const i = Math.floor(b.length * at);
  for (let k = 0; k < count; k++) b[i + k] = b[i + k]! ^ 0xff;
  writeFileSync(path, b);
}

/**
 * Sets (or, with undefined, deletes) a field of a JSON state file. A Buffer value stands for "the
 * SHA-256 of these bytes".
 */
export function setStateField(path: string, field: string[], value: unknown): void {
  const j = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  let o = j;
  for (const k of field.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const last = field[field.length - 1]!;
  if (value === undefined) delete o[last];
  else o[last] = Buffer.isBuffer(value) ? createHash('sha256').update(value).digest('hex') : value;
  writeFileSync(path, JSON.stringify(j));
}
