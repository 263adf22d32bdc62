// Builds build/Release/vlmix_cuda.node (the vlmix-cuda addon) when nvcc is available. Separate from
// the CPU addon so that vlmix_cpu.node never depends on CUDA. Never fails the install: on any problem
// it prints "vlmix-cuda not built: <reason>" and exits 0.
//   *.cu -> nvcc objects (sm_80, sm_86, sm_89, sm_90 SASS + compute_90 PTX), *.cc -> g++ objects,
//   linked with g++ against static cudart (the driver, libcuda.so.1, and cuBLAS are loaded at run time).
// Incremental: skipped when the .node is newer than every source under src/cuda and this script;
// objects are rebuilt only when older than their source or any header.
// Env: VLMIX_BUILD_CUDA=0 skips; VLMIX_NVCC=/path/to/nvcc; VLMIX_CUDA_ARCHS="80 86 89 90" overrides
// the SASS list; VLMIX_CUDA_JOBS parallel compiles (default: CPU count).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'src', 'cuda');
const objDir = join(root, 'build', 'cuda-obj');
const addon = join(root, 'build', 'Release', 'vlmix_cuda.node');
const force = process.argv.includes('--force');

function skip(reason) {
  console.warn(`vlmix-cuda not built: ${String(reason).split('\n')[0]}`);
  process.exit(0);
}

const mtime = (p) => statSync(p).mtimeMs;

function findNvcc() {
  const cands = [];
  if (process.env.VLMIX_NVCC) cands.push(process.env.VLMIX_NVCC);
  for (const d of (process.env.PATH ?? '').split(':')) if (d) cands.push(join(d, 'nvcc'));
  cands.push('/usr/local/cuda/bin/nvcc');
  return cands.find((p) => existsSync(p)) ?? null;
}

/** CUDA include and library dirs next to nvcc (the toolkit root), following symlinks. */
function toolkit(nvcc) {
  const r = spawnSync(nvcc, ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${nvcc} --version failed`);
  const real = spawnSync('readlink', ['-f', nvcc], { encoding: 'utf8' }).stdout.trim() || nvcc;
  const roots = [join(dirname(real), '..'), join(dirname(nvcc), '..'), '/usr/local/cuda'];
  const base = roots.find((p) => existsSync(join(p, 'include', 'cuda_runtime_api.h')));
  if (!base) throw new Error('cuda_runtime_api.h not found next to nvcc');
  const libs = ['lib64', 'lib', join('targets', 'x86_64-linux', 'lib'), join('targets', 'sbsa-linux', 'lib')]
    .map((l) => join(base, l)).filter((l) => existsSync(join(l, 'libcudart_static.a')));
  if (!libs.length) throw new Error(`libcudart_static.a not found under ${base}`);
  const version = /release ([\d.]+)/.exec(r.stdout)?.[1] ?? '?';
  return { include: join(base, 'include'), lib: libs[0], version };
}

function nodeIncludes() {
  const req = createRequire(join(root, 'package.json'));
  const napi = dirname(req.resolve('node-addon-api/package.json'));
  const nd = process.env.npm_config_nodedir;
  const heads = [nd && join(nd, 'include', 'node'), join(dirname(process.execPath), '..', 'include', 'node')]
    .filter(Boolean).find((p) => existsSync(join(p, 'node_api.h')));
  if (!heads) throw new Error('Node headers (node_api.h) not found; set npm_config_nodedir');
  return [napi, heads];
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', (code) => {
      if (err.trim()) process.stderr.write(err);
      code === 0 ? resolve() : reject(new Error(`${cmd.split('/').pop()} failed on ${args.find((a) => /\.(cu|cc)$/.test(a)) ?? 'link'}: ${err.trim().split('\n').find((l) => /error/i.test(l)) ?? `exit ${code}`}`));
    });
  });
}

async function pool(tasks, n) {
  const queue = tasks.slice();
  const workers = Array.from({ length: Math.max(1, n) }, async () => {
    while (queue.length) await queue.shift()();
  });
  await Promise.all(workers);
}

/** Local headers reachable from `files` through #include "..." lines (absolute paths). */
function includedHeaders(files) {
  const seen = new Set();
  const visit = (file) => {
    for (const m of readFileSync(file, 'utf8').matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) {
      const h = join(dirname(file), m[1]);
      if (seen.has(h) || !existsSync(h)) continue;
      seen.add(h);
      visit(h);
    }
  };
  files.forEach(visit);
  return [...seen];
}

async function main() {
  if (process.env.VLMIX_BUILD_CUDA === '0') skip('VLMIX_BUILD_CUDA=0');
  if (process.platform !== 'linux') skip(`platform ${process.platform} (linux only)`);
  const nvcc = findNvcc();
  if (!nvcc) skip('nvcc not found (set VLMIX_NVCC, or put nvcc on PATH or in /usr/local/cuda/bin)');
  const files = readdirSync(srcDir);
  const sources = files.filter((f) => /\.(cu|cc)$/.test(f)).sort();
  // Every header the sources include, followed through #include "..." (the glue and the argument
  // types shared with the CPU addon live in src/glue and src/native).
  const headers = includedHeaders(sources.map((f) => join(srcDir, f)));
  const self = fileURLToPath(import.meta.url);
  const newestHeader = Math.max(mtime(self), ...headers.map(mtime));
  const newest = Math.max(newestHeader, ...sources.map((s) => mtime(join(srcDir, s))));
  if (!force && existsSync(addon) && mtime(addon) > newest) return;

  const tk = toolkit(nvcc);
  const incs = nodeIncludes();
  mkdirSync(objDir, { recursive: true });
  mkdirSync(dirname(addon), { recursive: true });
  const archs = (process.env.VLMIX_CUDA_ARCHS ?? '80 86 89 90').split(/[\s,]+/).filter(Boolean);
  const gencode = archs.flatMap((a) => ['-gencode', `arch=compute_${a},code=sm_${a}`]);
  gencode.push('-gencode', `arch=compute_${archs[archs.length - 1]},code=compute_${archs[archs.length - 1]}`);
  const defs = ['-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED'];
  const jobs = Number(process.env.VLMIX_CUDA_JOBS) || availableParallelism();
  const t0 = Date.now();
  const objs = [];
  const tasks = [];
  for (const s of sources) {
    const src = join(srcDir, s);
    const obj = join(objDir, s.replace(/\.(cu|cc)$/, s.endsWith('.cu') ? '.cu.o' : '.o'));
    objs.push(obj);
    if (!force && existsSync(obj) && mtime(obj) > Math.max(mtime(src), newestHeader)) continue;
    const args = s.endsWith('.cu')
      ? ['-std=c++17', '-O3', '-Xcompiler', '-fPIC', '--threads', '2', ...gencode, `-I${tk.include}`, '-c', src, '-o', obj]
      : ['-std=c++17', '-O2', '-fPIC', '-fexceptions', ...defs, `-I${tk.include}`, ...incs.map((i) => `-I${i}`), '-c', src, '-o', obj];
    tasks.push(() => run(s.endsWith('.cu') ? nvcc : 'g++', args));
  }
  await pool(tasks, jobs);
  const tmp = `${addon}.tmp`;
  await run('g++', ['-shared', '-o', tmp, ...objs, `-L${tk.lib}`, '-lcudart_static', '-lrt', '-ldl', '-lpthread',
    '-Wl,--exclude-libs,ALL', '-Wl,-z,noexecstack']);
  renameSync(tmp, addon);
  console.log(`vlmix-cuda: built ${addon} with CUDA ${tk.version} (${archs.map((a) => `sm_${a}`).join(' ')} + PTX) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => skip(e instanceof Error ? e.message : e));
