// Loading reference fixtures: a directory with io.safetensors, optional weights.safetensors and README.md.
import { existsSync, readFileSync } from 'node:fs';
import { readFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensorsFile, readSafetensorsFileSync, type SafetensorsFile } from '../io/safetensors.js';

export interface Fixture {
  /** weights.safetensors, or null when the folder has none. */
  weights: SafetensorsFile | null;
  /** io.safetensors: inputs and expected outputs. */
  io: SafetensorsFile;
  /** README.md text, when present. */
  readme?: string;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** Reads a fixture folder. Throws if `io.safetensors` is absent or any file is malformed. */
export async function loadFixture(dir: string): Promise<Fixture> {
  const ioPath = join(dir, 'io.safetensors');
  if (!(await exists(ioPath))) throw new Error(`loadFixture: ${ioPath} not found (a fixture folder needs io.safetensors)`);
  const weightsPath = join(dir, 'weights.safetensors');
  const readmePath = join(dir, 'README.md');
  const fx: Fixture = {
    io: await readSafetensorsFile(ioPath),
    weights: (await exists(weightsPath)) ? await readSafetensorsFile(weightsPath) : null,
  };
  if (await exists(readmePath)) fx.readme = await readFile(readmePath, 'utf8');
  return fx;
}

/** Synchronous variant of loadFixture. */
export function loadFixtureSync(dir: string): Fixture {
  const ioPath = join(dir, 'io.safetensors');
  if (!existsSync(ioPath)) throw new Error(`loadFixtureSync: ${ioPath} not found (a fixture folder needs io.safetensors)`);
  const weightsPath = join(dir, 'weights.safetensors');
  const readmePath = join(dir, 'README.md');
  const fx: Fixture = {
    io: readSafetensorsFileSync(ioPath),
    weights: existsSync(weightsPath) ? readSafetensorsFileSync(weightsPath) : null,
  };
  if (existsSync(readmePath)) fx.readme = readFileSync(readmePath, 'utf8');
  return fx;
}
