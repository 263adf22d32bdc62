/**
 * Checks docs/architecture.md's package table against the code: for every package, the packages its
 * sources import (`@vlmix/*` and external, node: builtins aside) must be exactly those the table's
 * "imports" column lists, and each must be a dependency in its package.json. Also checks that core
 * imports no other vlmix package and that nothing imports cli, bench or examples.
 *
 *   pnpm exec tsx scripts/check-imports.ts      (exit 1 and a list of problems when they disagree)
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface PackageImports {
  /** Short name: 'core' for @vlmix/core. */
  name: string;
  /** Packages imported by src/ (`@vlmix/x` as 'x', externals by name). */
  imports: string[];
  /** package.json dependencies (vlmix ones as short names). */
  declared: string[];
}

const SPEC = /(?:from\s+|import\s*\(\s*)'([^'.][^']*)'/g;

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** '@vlmix/core/kernel-names' -> 'core'; '@tensorflow/tfjs' -> '@tensorflow/tfjs'; 'node:fs' -> null. */
function packageOf(spec: string): string | null {
  if (spec.startsWith('node:')) return null;
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  return name.startsWith('@vlmix/') ? name.slice('@vlmix/'.length) : name;
}

export function actualImports(root: string): PackageImports[] {
  return readdirSync(join(root, 'packages')).sort().map((dir) => {
    const pj = JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')) as { name: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
    const imports = new Set<string>();
    for (const f of tsFiles(join(root, 'packages', dir, 'src'))) {
      for (const m of readFileSync(f, 'utf8').matchAll(SPEC)) {
        const p = packageOf(m[1]!);
        if (p) imports.add(p);
      }
    }
    const self = pj.name.replace('@vlmix/', '');
    imports.delete(self);
    const declared = Object.keys({ ...pj.dependencies, ...pj.optionalDependencies }).map((d) => packageOf(d)!);
    return { name: self, imports: [...imports].sort(), declared: declared.sort() };
  });
}

/** The table's rows: package short name -> imports column. */
export function documentedImports(markdown: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const section = markdown.split(/^## /m).find((s) => s.startsWith('Packages and the direction of imports'));
  if (!section) throw new Error(`docs/architecture.md: no "## Packages and the direction of imports" section`);
  for (const line of section.split('\n')) {
    const m = /^\| `@vlmix\/([a-z-]+)` \|.*\| ([^|]*) \|$/.exec(line.trim());
    if (!m) continue;
    const cells = m[2]!.trim();
    out.set(m[1]!, cells === '(none)' ? [] : cells.split(',').map((s) => s.trim().replace(/`/g, '').replace(/ \(optional\)$/, '')).sort());
  }
  return out;
}

/** Problems found (empty when the table and the code agree). `markdown` defaults to docs/architecture.md. */
export function checkImportTable(root: string, markdown = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8')): string[] {
  const problems: string[] = [];
  const doc = documentedImports(markdown);
  const real = actualImports(root);
  const vlmix = new Set(real.map((r) => r.name));
  for (const p of real) {
    const listed = doc.get(p.name);
    if (!listed) {
      problems.push(`@vlmix/${p.name}: missing from the table in docs/architecture.md`);
      continue;
    }
    const extra = p.imports.filter((x) => !listed.includes(x));
    const gone = listed.filter((x) => !p.imports.includes(x));
    if (extra.length) problems.push(`@vlmix/${p.name}: src imports ${extra.join(', ')}, which the table does not list`);
    if (gone.length) problems.push(`@vlmix/${p.name}: the table lists ${gone.join(', ')}, which src does not import`);
    const undeclared = p.imports.filter((x) => !p.declared.includes(x));
    if (undeclared.length) problems.push(`@vlmix/${p.name}: src imports ${undeclared.join(', ')}, not a dependency in its package.json`);
    if (p.name === 'core' && p.imports.some((x) => vlmix.has(x))) problems.push(`@vlmix/core imports another vlmix package (${p.imports.join(', ')}); core imports none`);
    for (const never of ['cli']) if (p.imports.includes(never)) problems.push(`@vlmix/${p.name} imports @vlmix/${never}; nothing imports it`);
  }
  for (const name of doc.keys()) if (!real.some((p) => p.name === name)) problems.push(`docs/architecture.md lists @vlmix/${name}, which is not a package`);
  return problems;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = join(import.meta.dirname, '..');
  const problems = checkImportTable(root);
  for (const p of actualImports(root)) {
    const unused = p.declared.filter((d) => !p.imports.includes(d));
    console.log(`@vlmix/${p.name}: imports ${p.imports.join(', ') || '(none)'}${unused.length ? ` (declared, not imported: ${unused.join(', ')})` : ''}`);
  }
  if (problems.length) {
    console.error(`${relative(process.cwd(), join(root, 'docs', 'architecture.md'))} disagrees with the code:\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  console.log('docs/architecture.md matches the imports');
}
