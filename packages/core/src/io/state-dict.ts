// Loading / saving named tf.Variables from / to safetensors.
import * as tf from '@tensorflow/tfjs';
import { isFloatDtype, writeSafetensorsFile, type SafetensorsFile } from './safetensors.js';

export type ParamCollection = Map<string, tf.Variable> | Record<string, tf.Variable>;

export interface LoadStateDictOptions {
  /**
   * Maps a tensor name in the file to a parameter name. Returning null/undefined skips the tensor
   * on purpose (it is reported in `skipped`, not in `unexpected`). Default: identity.
   */
  nameMap?: (fileName: string) => string | null | undefined;
  /** Throw (before assigning anything) if any parameter is missing, unexpected or mis-shaped. Default true. */
  strict?: boolean;
  /**
   * Return true to transpose a 2-D file tensor before assigning (e.g. [out, in] Linear weights into
   * an [in, out] parameter). Called with the parameter name and the file tensor name.
   */
  transpose?: (name: string, fileName: string) => boolean;
}

export interface ShapeMismatch {
  /** Parameter name. */
  name: string;
  /** The file tensor's name. */
  fileName: string;
  /** The parameter's shape. */
  expected: number[];
  /** The file tensor's shape (after the optional transpose). */
  actual: number[];
  /** Set when the dtypes are incompatible (e.g. a float tensor into an int32 variable). */
  dtype?: { expected: string; actual: string };
}

export interface LoadStateDictResult {
  /** Parameter names that were assigned. */
  loaded: string[];
  /** Parameter names no file tensor was mapped to. */
  missing: string[];
  /** File tensor names mapped to no existing parameter (after nameMap). */
  unexpected: string[];
  mismatched: ShapeMismatch[];
  /** File tensor names for which nameMap returned null/undefined. */
  skipped: string[];
}

function toMap(params: ParamCollection): Map<string, tf.Variable> {
  return params instanceof Map ? params : new Map(Object.entries(params));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;

function dtypeCompatible(varDtype: string, fileDtype: string): boolean {
  if (varDtype === 'float32') return true; // any numeric dtype converts to float32
  if (varDtype === 'int32') return !isFloatDtype(fileDtype as never);
  if (varDtype === 'bool') return fileDtype === 'BOOL';
  return false;
}

/**
 * Assigns tensors from `file` to the matching variables. Everything is validated (names, shapes,
 * dtypes, I64 range) before the first assignment, so a strict-mode error leaves all variables as
 * they were. In strict mode one Error lists every missing, unexpected and mis-shaped name.
 * Creates no lasting tensors besides the variables' new values.
 */
export function loadStateDict(
  params: ParamCollection,
  file: SafetensorsFile,
  opts: LoadStateDictOptions = {},
): LoadStateDictResult {
  const { nameMap, strict = true, transpose } = opts;
  const vars = toMap(params);
  const unexpected: string[] = [];
  const skipped: string[] = [];
  const mismatched: ShapeMismatch[] = [];
  const plan: { param: string; fileName: string; transpose: boolean; shape: number[] }[] = [];
  const sourceOf = new Map<string, string>();

  for (const fileName of file.names()) {
    const param = nameMap ? nameMap(fileName) : fileName;
    if (param === null || param === undefined) {
      skipped.push(fileName);
      continue;
    }
    const v = vars.get(param);
    if (!v) {
      unexpected.push(param === fileName ? fileName : `${fileName} (-> ${param})`);
      continue;
    }
    const prev = sourceOf.get(param);
    if (prev !== undefined) {
      throw new Error(`loadStateDict: file tensors "${prev}" and "${fileName}" both map to parameter "${param}"`);
    }
    sourceOf.set(param, fileName);
    const entry = file.get(fileName);
    const tr = transpose ? transpose(param, fileName) : false;
    if (tr && entry.shape.length !== 2) {
      throw new Error(`loadStateDict: transpose requested for "${param}" but file tensor "${fileName}" has rank ${entry.shape.length} (shape ${fmt(entry.shape)}); only 2-D tensors can be transposed`);
    }
    const actual = tr ? [entry.shape[1]!, entry.shape[0]!] : [...entry.shape];
    if (!dtypeCompatible(v.dtype, entry.dtype)) {
      mismatched.push({ name: param, fileName, expected: [...v.shape], actual, dtype: { expected: v.dtype, actual: entry.dtype } });
    } else if (!sameShape(actual, v.shape)) {
      mismatched.push({ name: param, fileName, expected: [...v.shape], actual });
    } else {
      plan.push({ param, fileName, transpose: tr, shape: entry.shape });
    }
  }
  const missing = [...vars.keys()].filter((k) => !sourceOf.has(k)).sort();
  unexpected.sort();
  skipped.sort();
  mismatched.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  if (strict && (missing.length || unexpected.length || mismatched.length)) {
    const lines = [`loadStateDict (strict): the file does not match the parameters; nothing was assigned.`];
    if (missing.length) {
      lines.push(`  missing (${missing.length}) — parameters with no tensor in the file:`);
      for (const m of missing) lines.push(`    ${m} ${fmt(vars.get(m)!.shape)}`);
    }
    if (unexpected.length) {
      lines.push(`  unexpected (${unexpected.length}) — file tensors matching no parameter:`);
      for (const u of unexpected) {
        const fileName = u.includes(' (-> ') ? u.slice(0, u.indexOf(' (-> ')) : u;
        lines.push(`    ${u} ${fmt(file.get(fileName).shape)}`);
      }
    }
    if (mismatched.length) {
      lines.push(`  mismatched (${mismatched.length}):`);
      for (const m of mismatched) {
        const src = m.fileName === m.name ? '' : ` (file "${m.fileName}")`;
        lines.push(
          m.dtype
            ? `    ${m.name}${src}: dtype ${m.dtype.actual} cannot be loaded into a ${m.dtype.expected} variable`
            : `    ${m.name}${src}: expected ${fmt(m.expected)}, file has ${fmt(m.actual)}`,
        );
      }
    }
    throw new Error(lines.join('\n'));
  }

  // Decode everything first (may throw, e.g. I64 out of range) so no partial state is left behind.
  const decoded = plan.map((p) => {
    const v = vars.get(p.param)!;
    const data =
      v.dtype === 'float32'
        ? file.toFloat32(p.fileName)
        : v.dtype === 'bool'
          ? Uint8Array.from(file.toInt32(p.fileName))
          : file.toInt32(p.fileName);
    return { ...p, v, data };
  });
  for (const d of decoded) {
    tf.tidy(() => {
      let t: tf.Tensor = tf.tensor(d.data, d.shape, d.v.dtype);
      if (d.transpose) t = tf.transpose(t);
      d.v.assign(t);
    });
  }
  return { loaded: decoded.map((d) => d.param).sort(), missing, unexpected, mismatched, skipped };
}

/** Writes the variables (by name, float32 as F32) to a safetensors file, atomically. */
export async function saveStateDict(
  path: string,
  params: ParamCollection,
  metadata?: Record<string, string>,
): Promise<void> {
  const vars = toMap(params);
  const tensors: Record<string, tf.Tensor> = {};
  for (const [k, v] of vars) tensors[k] = v;
  await writeSafetensorsFile(path, tensors, metadata ? { metadata } : {});
}
