/** Shared tsup settings of the workspace packages: ESM + .d.ts for Node 20. */
import type { Options } from 'tsup';

export function packageConfig(entry: Options['entry'] = ['src/index.ts']): Options {
  return { entry, format: ['esm'], dts: true, clean: true, sourcemap: true, target: 'node20' };
}
