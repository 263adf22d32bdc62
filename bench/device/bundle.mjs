// Bundles bench/device/parity-entry.ts (tfjs and the test files inlined, vitest replaced by
// ./vitest-shim.ts) into .device/parity.mjs, the bench into .device/bench.mjs, the CLI into .device/vlmix.mjs, and copies the built addons next to it, so a device run
// needs only `.device/` (carry: [".device"]). Run from the repository root after `pnpm install`
// (which builds build/Release/vlmix_cuda.node where nvcc exists) and /work/shared/tools/device-prep.
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
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
// Three entries: the parity suites, the bench (kernels + presets vs PyTorch) and the CLI (the demo).
const entries = [
  ['parity', join(here, 'parity-entry.ts')],
  ['bench', join(here, 'bench-entry.ts')],
  ['vlmix', join(top, 'packages', 'cli', 'src', 'bin.ts')],
];
for (const [name, entry] of entries) {
  await esbuild.build({
    entryPoints: [entry],
    outfile: join(outDir, `${name}.mjs`),
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
}
const size = (p) => `${(statSync(p).size / 2 ** 20).toFixed(1)} MiB`;
for (const [name] of entries) console.log(`bundled .device/${name}.mjs (${size(join(outDir, `${name}.mjs`))})`);
for (const f of ['vlmix_cuda.node', 'vlmix_cpu.node']) {
  const src = join(addons, f);
  if (!existsSync(src)) {
    console.warn(`warning: ${src} missing (${f === 'vlmix_cuda.node' ? 'needs nvcc at pnpm install' : 'CPU addon not built'})`);
    continue;
  }
  copyFileSync(src, join(outDir, f));
  console.log(`copied ${f} (${size(src)})`);
}
// The device run carries at most 64 MiB (the working tree's tracked files travel too): stay well under.
const carried = readdirSync(outDir).reduce((n, f) => n + statSync(join(outDir, f)).size, 0);
const limit = 48 * 2 ** 20;
console.log(`.device/ holds ${(carried / 2 ** 20).toFixed(1)} MiB (limit for this bundle ${limit / 2 ** 20} MiB)`);
if (carried > limit) {
  console.error(`.device/ is ${(carried / 2 ** 20).toFixed(1)} MiB, over ${limit / 2 ** 20} MiB: remove stale files from it`);
  process.exit(1);
}
