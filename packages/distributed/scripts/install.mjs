// Builds build/Release/vlmix_mpi.node (the MPI binding of @vlmix/distributed) where an MPI
// development install is found; never fails the package install. The outcome, built or not and why,
// is written to build/mpi-build.json, which the loader (src/addon.ts) reports when the addon is absent.
//   MPI flags: `mpicc --showme:compile/--showme:link` (Open MPI), else `mpicc -show` (MPICH), else
//   `pkg-config ompi-c` / `pkg-config mpich`. Env: VLMIX_MPICC=/path/to/mpicc; VLMIX_BUILD_MPI=0 skips.
// Incremental: skipped when the addon is newer than every source and this script.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'src', 'native');
const addon = join(root, 'build', 'Release', 'vlmix_mpi.node');
const statusFile = join(root, 'build', 'mpi-build.json');
const force = process.argv.includes('--force');

function record(status) {
  mkdirSync(dirname(statusFile), { recursive: true });
  writeFileSync(statusFile, `${JSON.stringify({ ...status, at: new Date().toISOString() }, null, 1)}\n`);
}

// `stale`: a build was due (sources changed, or MPI is gone) and did not happen, so an existing addon
// would not match them: remove it. Skips asked for by the environment leave it alone.
function skip(reason, stale = true) {
  const why = String(reason).split('\n')[0];
  if (stale) rmSync(addon, { force: true });
  record({ built: false, reason: why });
  console.warn(`vlmix-mpi not built: ${why} (@vlmix/distributed runs single-process only)`);
  process.exit(0);
}

const mtime = (p) => statSync(p).mtimeMs;
const run = (cmd, args) => spawnSync(cmd, args, { encoding: 'utf8' });
const words = (s) => s.trim().split(/\s+/).filter(Boolean);

function findMpicc() {
  const cands = [];
  if (process.env.VLMIX_MPICC) cands.push(process.env.VLMIX_MPICC);
  for (const d of (process.env.PATH ?? '').split(':')) if (d) cands.push(join(d, 'mpicc'));
  cands.push('/usr/bin/mpicc', '/usr/local/bin/mpicc');
  return cands.find((p) => existsSync(p)) ?? null;
}

/** Compile and link flags of the MPI installation, and where they came from. */
function mpiFlags() {
  const mpicc = findMpicc();
  if (mpicc) {
    const c = run(mpicc, ['--showme:compile']);
    const l = run(mpicc, ['--showme:link']);
    if (c.status === 0 && l.status === 0) return { from: `${mpicc} --showme`, compile: words(c.stdout), link: words(l.stdout) };
    const s = run(mpicc, ['-show']); // MPICH: "gcc -I... -L... -lmpi"
    if (s.status === 0) {
      const all = words(s.stdout).slice(1);
      return { from: `${mpicc} -show`, compile: all.filter((f) => /^-[ID]/.test(f)), link: all.filter((f) => /^(-L|-l|-Wl)/.test(f)) };
    }
  }
  for (const pkg of ['ompi-c', 'mpich', 'mpi']) {
    const r = run('pkg-config', ['--cflags', '--libs', pkg]);
    if (r.status === 0) {
      const all = words(r.stdout);
      return { from: `pkg-config ${pkg}`, compile: all.filter((f) => !/^(-L|-l|-Wl)/.test(f)), link: all.filter((f) => /^(-L|-l|-Wl)/.test(f)) };
    }
  }
  return null;
}

function nodeIncludes() {
  const req = createRequire(join(root, 'package.json'));
  let napi;
  try {
    napi = dirname(req.resolve('node-addon-api/package.json'));
  } catch {
    throw new Error('node-addon-api is not installed');
  }
  const nd = process.env.npm_config_nodedir;
  const heads = [nd && join(nd, 'include', 'node'), join(dirname(process.execPath), '..', 'include', 'node')]
    .filter(Boolean).find((p) => existsSync(join(p, 'node_api.h')));
  if (!heads) throw new Error('Node headers (node_api.h) not found; set npm_config_nodedir');
  return [napi, heads];
}

function main() {
  if (process.env.VLMIX_BUILD_MPI === '0') skip('VLMIX_BUILD_MPI=0', false);
  if (process.env.VLMIX_SKIP_NATIVE_BUILD) skip('VLMIX_SKIP_NATIVE_BUILD is set', false);
  if (process.platform === 'win32') skip('Windows is not supported (MS-MPI binding not written)');
  const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cc')).sort().map((f) => join(srcDir, f));
  const inputs = [fileURLToPath(import.meta.url), ...readdirSync(srcDir).map((f) => join(srcDir, f))];
  if (!force && existsSync(addon) && mtime(addon) > Math.max(...inputs.map(mtime))) return;

  const flags = mpiFlags();
  if (!flags) skip('no MPI found: neither mpicc (VLMIX_MPICC, PATH) nor pkg-config ompi-c/mpich; install e.g. `apt-get install openmpi-bin libopenmpi-dev`');
  const incs = nodeIncludes();
  const cxx = process.env.CXX || 'g++';
  mkdirSync(dirname(addon), { recursive: true });
  const tmp = `${addon}.tmp`;
  const args = ['-std=c++17', '-O3', '-fPIC', '-shared', '-fexceptions', '-fvisibility=hidden',
    '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DOMPI_SKIP_MPICXX', '-DMPICH_SKIP_MPICXX',
    ...incs.map((i) => `-I${i}`), ...flags.compile, ...sources, '-o', tmp, ...flags.link, '-ldl', '-Wl,-z,noexecstack'];
  const t0 = Date.now();
  const r = run(cxx, args);
  if (r.error) skip(`${cxx}: ${r.error.message}`);
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    skip(`${cxx} failed: ${r.stderr.split('\n').find((l) => /error/i.test(l)) ?? `exit ${r.status}`}`);
  }
  renameSync(tmp, addon);
  const version = run(findMpicc() ?? 'mpicc', ['--version']).stdout?.split('\n')[0] ?? '';
  record({ built: true, reason: `built with MPI flags from ${flags.from}`, mpi: { from: flags.from, compile: flags.compile, link: flags.link, compiler: version } });
  console.log(`vlmix-mpi: built ${addon} (MPI flags from ${flags.from}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

try {
  main();
} catch (e) {
  skip(e instanceof Error ? e.message : e);
}
