/**
 * open_flamingo gated cross-attention blocks from open_flamingo's own names
 * (mlfoundations/open_flamingo, src/flamingo_lm.py + src/helpers.py):
 *
 *   block-local names   attn.norm.{weight,bias}, attn.to_q.weight, attn.to_kv.weight, attn.to_out.weight,
 *                       attn_gate, ff.0.{weight,bias}, ff.1.weight, ff.3.weight, ff_gate
 *   block of layer N    [lang_encoder.]<decoder layers>.N.gated_cross_attn_layer.<local>  (FlamingoLayer:
 *                       model.layers.N for LLaMA, transformer.blocks.N for MPT, gpt_neox.layers.N, ...)
 *                       [lang_encoder.]gated_cross_attn_layers.N.<local>  (the same module, listed again)
 *   one block           gated_cross_attn_layer.<local> or bare <local>, with `layer` saying which
 *
 * -> the mixin's `<prefix>gated_cross_attn_layers.N.<local>`. When a block is present under both of
 * open_flamingo's names (its state_dict lists the shared module twice) the first one is read. Every
 * other tensor (decoder_layer.*, embeddings, the vision encoder, the Perceiver) is skipped and listed.
 */
import { fail, loadStateDict, type LoadStateDictResult, type Model } from '@vlmix/core';
import { asSafetensors, type TensorSourceLike } from '../weights.js';
import { GatedCrossAttentionMixin } from './gated-cross-attention.js';

export interface LoadGatedCrossAttentionOptions {
  /** Stripped from every name first (e.g. 'lang_encoder.'); names without it are skipped. */
  prefix?: string;
  /** The layer of a single block given by its own names (`gated_cross_attn_layer.*` or bare). */
  layer?: number;
  /** Every block parameter must be loaded (default true; with `layer`, only that block's). */
  strict?: boolean;
}

const BLOCK_LOCAL = /^(attn\.(norm\.(weight|bias)|to_q\.weight|to_kv\.weight|to_out\.weight)|attn_gate|ff\.0\.(weight|bias)|ff\.[13]\.weight|ff_gate)$/;

/** (layer, block-local name) of an open_flamingo tensor name, or null when it is not a gated block's. */
export function openFlamingoBlockName(name: string, layer?: number): { layer: number; local: string } | null {
  const indexed = /^(?:.*\.)?(?:(\d+)\.gated_cross_attn_layer|gated_cross_attn_layers\.(\d+))\.(.+)$/.exec(name);
  if (indexed) return { layer: Number(indexed[1] ?? indexed[2]), local: indexed[3]! };
  if (layer === undefined) return null;
  const local = name.startsWith('gated_cross_attn_layer.') ? name.slice('gated_cross_attn_layer.'.length) : name;
  return BLOCK_LOCAL.test(local) ? { layer, local } : null;
}

/** Loads open_flamingo gated cross-attention weights into the GatedCrossAttentionMixin `mixinName`. */
export function loadGatedCrossAttention(model: Model, mixinName: string, src: TensorSourceLike, opts: LoadGatedCrossAttentionOptions = {}): LoadStateDictResult {
  const who = 'loadGatedCrossAttention';
  const m = model.getMixin(mixinName);
  if (!(m instanceof GatedCrossAttentionMixin)) fail(`${who}: mixin '${mixinName}' is not a GatedCrossAttentionMixin`);
  if (opts.layer !== undefined && !m.layers().includes(opts.layer)) {
    fail(`${who}: layer: expected one of the layers with a block (${m.layers().join(', ')}; everyN ${m.everyN}), got ${JSON.stringify(opts.layer)}`);
  }
  const prefix = opts.prefix ?? '';
  const file = asSafetensors(src);
  const only = opts.layer === undefined ? null : m.blockPrefix(opts.layer);
  const vars = new Map([...model.stateDict()].filter(([n]) => model.params.param(n).component === mixinName && (only === null || n.startsWith(only))));
  const taken = new Set<string>();
  try {
    return loadStateDict(vars, file, {
      strict: opts.strict ?? true,
      nameMap: (n) => {
        if (!n.startsWith(prefix)) return null;
        const b = openFlamingoBlockName(n.slice(prefix.length), opts.layer);
        if (!b) return null;
        const target = m.blockPrefix(b.layer) + b.local;
        if (taken.has(target)) return null; // the same block under open_flamingo's second name
        taken.add(target);
        return target;
      },
    });
  } catch (err) {
    throw new Error(`${who}: ${(err as Error).message}`);
  }
}
