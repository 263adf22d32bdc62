// Bundles bench/device/parity-entry.ts (tfjs and the test files inlined, vitest replaced by
// ./vitest-shim.ts) into .device/parity.mjs and copies the built addons next to it, so a device run
// needs only `.device/` (carry: [".device"]). Run from the repository root after `pnpm install`
// (which builds build/Release/vlmix_cuda.node where nvcc exists) and /work/shared/tools/device-prep.
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const top = resolve(here, '..', '..');
const outDir = join(top, '.device');
const addons = join(top, 'packages', 'backend-native', 'build', 'Release');

// esbuild is a dependency of tsup (root devDependency); resolve it through tsup.
const req = createRequire(createRequire(join(top, 'package.json')).resolve('tsup'));
const esbuild = req('esbuild');

mkdirSync(outDir, { recursive: true });
const shim = join(here, 'vitest-shim.ts');
await esbuild.build({
  entryPoints: [join(here, 'parity-entry.ts')],
  outfile: join(outDir, 'parity.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  conditions: ['@vlmix/source'],
  // Pure-JS bundle: the optional tfjs-node packages are not installed and never needed on the device.
  external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
  // tfjs and its CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __vlmixCreateRequire } from 'node:module'; const require = __vlmixCreateRequire(import.meta.url);" },
  plugins: [{
    name: 'vitest-shim',
    setup(b) {
      b.onResolve({ filter: /^vitest$/ }, () => ({ path: shim }));
    },
  }],
  logLevel: 'warning',
});
const size = (p) => `${(statSync(p).size / 2 ** 20).toFixed(1)} MiB`;
console.log(`bundled .device/parity.mjs (${size(join(outDir, 'parity.mjs'))})`);
for (const f of ['vlmix_cuda.node', 'vlmix_cpu.node']) {
  const src = join(addons, f);
  if (!existsSync(src)) {
    console.warn(`warning: ${src} missing (${f === 'vlmix_cuda.node' ? 'needs nvcc at pnpm install' : 'CPU addon not built'})`);
    continue;
  }
  copyFileSync(src, join(outDir, f));
  console.log(`copied ${f} (${size(src)})`);
}
