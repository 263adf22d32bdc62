import { defineConfig } from 'tsup';
import { packageConfig } from '../../tsup.base.js';

export default defineConfig(packageConfig({ index: 'src/index.ts', 'kernel-names': 'src/ops/kernel-names.ts', testkit: 'src/testkit/index.ts' }));
