/**
 * CogVLM's `VisionExpertAttention` / `VisionExpertMLP` of ONE decoder layer, loaded from their own
 * state_dict names (THUDM/cogvlm-chat-hf and cogvlm2 `modeling_cogvlm.py`), with or without the
 * enclosing model's prefix (`model.layers.N.self_attn.` / `model.layers.N.mlp.`):
 *
 *   attention                                 vlmix parameter (layer N)
 *   language_expert_query_key_value.{w,b}     transformer.layers.N.attention.query_key_value.*  (the base = language expert)
 *   language_expert_dense.{w,b}               transformer.layers.N.attention.dense.*
 *   vision_expert_query_key_value.{w,b}       transformer.layers.N.attention.vision_expert_query_key_value.*
 *   vision_expert_dense.{w,b}                 transformer.layers.N.attention.vision_expert_dense.*
 *   rotary_emb.inv_freq                       skipped (RoPE recomputes it)
 *   mlp: {language,vision}_mlp.{gate_proj,up_proj,down_proj}.{w,b}
 *        -> mlp.{dense_h_to_4h_gate,dense_h_to_4h,dense_4h_to_h}.* (language) / mlp.vision_mlp.* (vision)
 *
 * Strict: every parameter of the module must get a tensor, and every tensor under the prefix must map
 * to one (a bias the model lacks is an error, not silently dropped). Nothing is assigned on error.
 */
import { fail, loadStateDict, names, type LoadStateDictResult, type Model } from '@vlmix/core';
import { asSafetensors, detectPrefix, type TensorSourceLike } from '../weights.js';
import { VisualExpertMixin, visualExpertNames } from './visual-expert.js';

export interface LoadVisionExpertOptions {
  /**
   * Prefix of the module's names in the source. Default: `model.layers.<layer>.self_attn.` (attention)
   * or `model.layers.<layer>.mlp.` (MLP) when the source holds such names, else the bare module names.
   */
  prefix?: string;
}

const MLP_PARTS = [['gate_proj', 'dense_h_to_4h_gate'], ['up_proj', 'dense_h_to_4h'], ['down_proj', 'dense_4h_to_h']] as const;

function checkLayer(model: Model, layer: number, who: string): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= model.config.numLayers) {
    fail(`${who}: layer: expected an integer in [0, ${model.config.numLayers - 1}], got ${JSON.stringify(layer)}`);
  }
  if (!model.mixinNames().some((n) => model.getMixin(n) instanceof VisualExpertMixin)) {
    fail(`${who}: the model has no VisualExpertMixin (mixins: ${model.mixinNames().join(', ') || 'none'}); add one first`);
  }
}

/** Loads `pairs` (module-local reference name -> vlmix parameter base, '.weight'/'.bias' appended) from under `prefix`. */
function loadModule(model: Model, src: TensorSourceLike, prefix: string, pairs: [string, string][], skip: (local: string) => boolean, who: string): LoadStateDictResult {
  const file = asSafetensors(src);
  const targets = new Map<string, string>();
  const vars = new Map<string, ReturnType<Model['param']>>();
  for (const [ref, mine] of pairs) {
    for (const s of ['.weight', '.bias']) {
      targets.set(ref + s, mine + s);
      if (model.hasParam(mine + s)) vars.set(mine + s, model.param(mine + s));
    }
  }
  try {
    return loadStateDict(vars, file, {
      strict: true,
      nameMap: (n) => {
        if (!n.startsWith(prefix)) return null;
        const local = n.slice(prefix.length);
        if (skip(local)) return null;
        return targets.get(local) ?? n;
      },
    });
  } catch (err) {
    throw new Error(`${who} (prefix ${JSON.stringify(prefix)}): ${(err as Error).message}`);
  }
}

/** Loads one layer's CogVLM VisionExpertAttention (both experts) into the base attention and the VisualExpertMixin. */
export function loadVisionExpertAttention(model: Model, layer: number, src: TensorSourceLike, opts: LoadVisionExpertOptions = {}): LoadStateDictResult {
  const who = 'loadVisionExpertAttention';
  checkLayer(model, layer, who);
  const file = asSafetensors(src);
  const prefix = detectPrefix(file.names(), [`model.layers.${layer}.self_attn.`], opts.prefix);
  return loadModule(model, file, prefix, [
    ['language_expert_query_key_value', names.layer(layer, 'attention.query_key_value')],
    ['language_expert_dense', names.layer(layer, 'attention.dense')],
    ['vision_expert_query_key_value', visualExpertNames.qkv(layer)],
    ['vision_expert_dense', visualExpertNames.dense(layer)],
  ], (local) => local === 'rotary_emb.inv_freq', who);
}

/** Loads one layer's CogVLM VisionExpertMLP (language_mlp -> the base MLP, vision_mlp -> the mixin). */
export function loadVisionExpertMLP(model: Model, layer: number, src: TensorSourceLike, opts: LoadVisionExpertOptions = {}): LoadStateDictResult {
  const who = 'loadVisionExpertMLP';
  checkLayer(model, layer, who);
  if (model.config.activation !== 'swiglu') fail(`${who}: CogVLM's MLP is SwiGLU (gate_proj, up_proj, down_proj), the model's activation is '${model.config.activation}'`);
  const file = asSafetensors(src);
  const prefix = detectPrefix(file.names(), [`model.layers.${layer}.mlp.`], opts.prefix);
  const pairs: [string, string][] = [];
  for (const [ref, mine] of MLP_PARTS) {
    pairs.push([`language_mlp.${ref}`, names.layer(layer, `mlp.${mine}`)]);
    pairs.push([`vision_mlp.${ref}`, visualExpertNames.mlp(layer, mine)]);
  }
  return loadModule(model, file, prefix, pairs, () => false, who);
}
