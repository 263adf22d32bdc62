// Helpers of the worker scripts that the tests start under mpirun (one process per rank).
import { writeFileSync } from 'node:fs';
import { useBackend } from '@vlmix/backend-native';

export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** A switch without a value. */
export const flag = (name: string): boolean => process.argv.includes(`--${name}`);

export const numArg = (name: string): number | undefined => (arg(name) === undefined ? undefined : Number(arg(name)));

/** The backend the test run uses (VLMIX_BACKEND, default auto = vlmix-cpu when built). */
export async function selectBackend(): Promise<string> {
  return (await useBackend((process.env.VLMIX_BACKEND ?? 'auto') as Parameters<typeof useBackend>[0])).backend;
}

/** Each rank writes its own result file: <out>.rank<r>.json. */
export function writeResult(out: string, rank: number, value: unknown): void {
  writeFileSync(`${out}.rank${rank}.json`, JSON.stringify(value));
}
