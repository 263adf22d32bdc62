/**
 * Where a component loader reads reference tensors from: a safetensors file (lazily opened, sharded
 * or not) or tensors already in memory (a state_dict by reference name). Loaders take either.
 */
import * as tf from '@tensorflow/tfjs';
import { loadStateDict, readSafetensors, writeSafetensors, type LoadStateDictResult, type Model, type SafetensorsFile } from '@vlmix/core';

export type TensorSourceLike = SafetensorsFile | Map<string, tf.Tensor> | Record<string, tf.Tensor>;

/** A SafetensorsFile view of `src` (in-memory tensors are copied once; the caller keeps ownership). */
export function asSafetensors(src: TensorSourceLike): SafetensorsFile {
  if (src instanceof Map) return readSafetensors(writeSafetensors(Object.fromEntries(src)));
  if (isSafetensorsFile(src)) return src;
  return readSafetensors(writeSafetensors(src));
}

function isSafetensorsFile(v: unknown): v is SafetensorsFile {
  return typeof v === 'object' && v !== null && typeof (v as SafetensorsFile).names === 'function' && typeof (v as SafetensorsFile).toFloat32 === 'function';
}

/**
 * The prefix under which `names` hold a module: `explicit` when given, else the first of
 * `candidates` that some name starts with, else '' (bare module names).
 */
export function detectPrefix(names: readonly string[], candidates: readonly string[], explicit?: string): string {
  if (explicit !== undefined) return explicit;
  return candidates.find((c) => names.some((n) => n.startsWith(c))) ?? '';
}

/**
 * Loads the tensors of `file` under `prefix` into mixin `mixinName`'s parameters, the rest of each name
 * mapped by `local` to the parameter's name inside the mixin (null: not this mixin's, skipped).
 */
export function loadMixinMapped(model: Model, mixinName: string, file: SafetensorsFile, prefix: string, strict: boolean, local: (rest: string) => string | null): LoadStateDictResult {
  model.getMixin(mixinName);
  const mine = `${mixinName}.`;
  const vars = new Map([...model.stateDict()].filter(([n]) => n.startsWith(mine)));
  return loadStateDict(vars, file, {
    strict,
    nameMap: (n) => {
      if (!n.startsWith(prefix)) return null;
      const l = local(n.slice(prefix.length));
      return l === null ? null : mine + l;
    },
  });
}
