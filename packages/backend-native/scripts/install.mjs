// Builds the native addon incrementally; never fails the package install.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const force = process.argv.includes('--force');
const addon = join(root, 'build', 'Release', 'vlmix_cpu.node');

function warn(reason) {
  console.warn(`vlmix-cpu native addon not built: ${String(reason).split('\n')[0]}; falling back to tfjs backends`);
  process.exit(0);
}

function newestSource() {
  let newest = statSync(join(root, 'binding.gyp')).mtimeMs;
  // src/glue: the N-API layer (headers) shared with the CUDA addon.
  for (const dir of [join(root, 'src', 'native'), join(root, 'src', 'glue')]) {
    for (const f of readdirSync(dir)) {
      if (/\.(cc|h|cpp|hpp)$/.test(f)) newest = Math.max(newest, statSync(join(dir, f)).mtimeMs);
    }
  }
  return newest;
}

// Offline-friendly: use the running Node's own headers when npm did not pass a nodedir.
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

function gyp(args) {
  let bin;
  try {
    bin = createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    throw new Error('node-gyp is not installed');
  }
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`node-gyp ${args[0]} exited with code ${r.status}`);
}

// The CUDA addon (vlmix_cuda.node) is a separate build that only runs where nvcc exists; it never
// fails the install either (scripts/build-cuda.mjs).
if (!process.env.VLMIX_SKIP_NATIVE_BUILD) {
  spawnSync(process.execPath, [join(root, 'scripts', 'build-cuda.mjs'), ...(force ? ['--force'] : [])], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

try {
  if (process.env.VLMIX_SKIP_NATIVE_BUILD) warn('VLMIX_SKIP_NATIVE_BUILD is set');
  if (!force && existsSync(addon) && statSync(addon).mtimeMs > newestSource()) {
    process.exit(0);
  }
  const jobs = ['-j', 'max'];
  // binding.gyp globs src/native/*.cc at configure time, so a changed file list needs a re-configure.
  const list = JSON.stringify(readdirSync(join(root, 'src', 'native')).filter((f) => f.endsWith('.cc')).sort());
  const listFile = join(root, 'build', 'vlmix-sources.json');
  const stale = !existsSync(listFile) || readFileSync(listFile, 'utf8') !== list;
  if (!existsSync(join(root, 'build', 'Makefile')) || stale) gyp(['configure', ...nodedirArgs()]);
  writeFileSync(listFile, list);
  gyp(['build', ...jobs]);
  if (!existsSync(addon)) throw new Error('build finished but vlmix_cpu.node is missing');
} catch (e) {
  warn(e instanceof Error ? e.message : e);
}
