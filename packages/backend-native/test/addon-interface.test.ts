// The TypeScript view of the addons (NativeAddon in src/native.ts, CudaAddon in src/cuda.ts) against
// what the addons export: both are built by one N-API glue (src/glue/napi_glue.h), which records each
// function's signature from its C++ parameter types (addon.signatures). Any drift in names, arity,
// argument kinds or results fails here.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { loadCuda } from '../src/cuda.js';
import { loadNative } from '../src/native.js';

const srcFile = (name: string) => fileURLToPath(new URL(`../src/${name}`, import.meta.url));

/** A type as the glue writes it: Id, number, boolean, TypedArray, object, X[], [X, Y], Record<...>. */
function typeText(t: ts.TypeNode, sf: ts.SourceFile): string {
  const localInterface = (n: string) => sf.statements.some((s) => ts.isInterfaceDeclaration(s) && s.name.text === n);
  if (ts.isTypeLiteralNode(t)) return 'object';
  if (ts.isArrayTypeNode(t)) return `${typeText(t.elementType, sf)}[]`;
  if (ts.isTupleTypeNode(t)) return `[${t.elements.map((e) => typeText(e as ts.TypeNode, sf)).join(', ')}]`;
  if (ts.isUnionTypeNode(t) && t.types.every((u) => /^(Float32|Int32|Uint8)Array$/.test(u.getText(sf)))) return 'TypedArray';
  if (ts.isTypeReferenceNode(t)) {
    const name = t.typeName.getText(sf);
    if (name === 'Array' && t.typeArguments?.length === 1) return `${typeText(t.typeArguments[0]!, sf)}[]`;
    if (name === 'Shape') return 'number[]';
    if (localInterface(name)) return 'object';
    if (/^(Float32|Int32|Uint8)Array$/.test(name)) return 'TypedArray';
  }
  return t.getText(sf).replace(/\s+/g, ' ');
}

/** name -> signature of each member of an interface (methods as "(A, B?) => R", properties as their type). */
function members(decl: ts.InterfaceDeclaration, sf: ts.SourceFile): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of decl.members) {
    const name = m.name!.getText(sf);
    if (ts.isMethodSignature(m)) {
      const params = m.parameters.map((p) => `${typeText(p.type!, sf)}${p.questionToken ? '?' : ''}`);
      out.set(name, `(${params.join(', ')}) => ${typeText(m.type!, sf)}`);
    } else if (ts.isPropertySignature(m)) {
      out.set(name, typeText(m.type!, sf));
    }
  }
  return out;
}

/** The members of interface `name` in `source`, following `extends Omit<Base, Alias>` to a base in `bases`. */
function interfaceSignatures(source: string, name: string, bases: Map<string, Map<string, string>> = new Map()): Map<string, string> {
  const sf = ts.createSourceFile('x.ts', source, ts.ScriptTarget.ES2022, true);
  const decls = sf.statements;
  const decl = decls.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name);
  if (!decl) throw new Error(`interface ${name} not found`);
  const result = new Map<string, string>();
  for (const h of decl.heritageClauses ?? []) {
    for (const e of h.types) {
      const [base, omitted] = e.typeArguments ?? [];
      if (e.expression.getText(sf) !== 'Omit' || !base || !omitted) throw new Error(`unsupported heritage ${e.getText(sf)}`);
      const alias = decls.find((s): s is ts.TypeAliasDeclaration => ts.isTypeAliasDeclaration(s) && s.name.text === omitted.getText(sf));
      const drop = new Set((alias ? alias.type.getText(sf) : omitted.getText(sf)).split('|').map((x) => x.trim().replace(/^'|'$/g, '')));
      for (const [k, v] of bases.get(base.getText(sf)) ?? []) if (!drop.has(k)) result.set(k, v);
    }
  }
  for (const [k, v] of members(decl, sf)) result.set(k, v);
  return result;
}

/** Differences between the interface and the addon's own signatures, one line each. */
function drift(declared: Map<string, string>, exported: Record<string, string>): string[] {
  const lines: string[] = [];
  for (const [k, v] of declared) {
    if (!(k in exported)) lines.push(`${k}: declared but not exported`);
    else if (exported[k] !== v) lines.push(`${k}: declared ${v}, exported ${exported[k]}`);
  }
  for (const k of Object.keys(exported)) if (!declared.has(k)) lines.push(`${k}: exported but not declared`);
  return lines;
}

const nativeSource = readFileSync(srcFile('native.ts'), 'utf8');
const native = interfaceSignatures(nativeSource, 'NativeAddon');
const cpu = loadNative();
const cuda = loadCuda();

describe('addon interfaces (src/native.ts, src/cuda.ts) match the addons', () => {
  it.skipIf(!cpu.addon)(`NativeAddon is what vlmix_cpu.node exports${cpu.addon ? '' : ` (skipped: ${cpu.reason})`}`, () => {
    const addon = cpu.addon!;
    expect(drift(native, addon.signatures)).toEqual([]);
    expect(Object.keys(addon).sort()).toEqual(Object.keys(addon.signatures).sort());
    expect(addon.signatures.layerNorm).toBe('(Id, Id, Id, number, number, number) => Id');
  });

  it.skipIf(!cuda.addon)(`CudaAddon is what vlmix_cuda.node exports${cuda.addon ? '' : ` (skipped: ${cuda.reason})`}`, () => {
    const cudaDecl = interfaceSignatures(readFileSync(srcFile('cuda.ts'), 'utf8'), 'CudaAddon', new Map([['NativeAddon', native]]));
    const addon = cuda.addon as unknown as Record<string, unknown> & { signatures: Record<string, string> };
    expect(drift(cudaDecl, addon.signatures)).toEqual([]);
    expect(Object.keys(addon).sort()).toEqual(Object.keys(addon.signatures).sort());
  });

  it.skipIf(!cpu.addon)('a wrong argument names the function, the argument and what was expected', () => {
    const addon = cpu.addon!;
    expect(() => addon.layerNorm(1, 2, 'x' as unknown as number, 4, 5, 6)).toThrow('layerNorm: argument 2: expected a buffer id (number), got string');
    expect(() => addon.strided(1, 0, 5 as unknown as number[], [1])).toThrow('strided: argument 2: expected number[] (an array), got number');
    expect(() => addon.strided(1, 0, new Array(17).fill(1), [1])).toThrow('strided: argument 2: expected at most 16 numbers, got an array');
    expect(() => addon.binary(99, 0, 1, [1], 1, [1], [1])).toThrow('binary: op code 99 is not in [0, 21)');
    expect(() => addon.create(new Uint8Array(3) as unknown as Float32Array)).toThrow('create: expected a Float32Array or Int32Array');
    const x = addon.create(new Float32Array(4)), idx = addon.create(new Int32Array([0, 5]));
    const before = addon.memory().buffers;
    expect(() => addon.gatherRows(x, 2, idx, 2, 2)).toThrow('VlmixGatherRows: index 5 at 1 is not in [0, 2] (2 = the zero row)');
    expect(addon.memory().buffers).toBe(before); // the output of the failed call was freed
    addon.free(x);
    addon.free(idx);
  });

  it('the check catches a changed argument, a missing function and an undeclared one', () => {
    const edited = nativeSource
      .replace('layerNorm(x: Id, gamma: Id, beta: Id, rows: number, c: number, eps: number): Id;',
        'layerNorm(x: Id, gamma: Id, rows: number, c: number, eps: number): Id;')
      .replace(/\n\s*swiglu\(gate: Id, up: Id, n: number\): Id;/, '');
    expect(edited).not.toBe(nativeSource);
    const declared = interfaceSignatures(edited, 'NativeAddon');
    declared.set('extra', '() => void');
    const exported = Object.fromEntries(native);
    expect(drift(declared, exported)).toEqual([
      'layerNorm: declared (Id, Id, number, number, number) => Id, exported (Id, Id, Id, number, number, number) => Id',
      'extra: declared but not exported',
      'swiglu: exported but not declared',
    ]);
  });
});
