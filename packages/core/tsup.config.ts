import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', 'kernel-names': 'src/ops/kernel-names.ts', testkit: 'src/testkit/index.ts' },
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
