/** `vlmix inspect <preset> [--json]`: the hook table per layer and parameter counts. */
import { createModel, getPreset, isModelFolder, HOOK_KINDS, HOOK_STAGES, HOST_HOOKS, type HookName, type Model } from '@vlmix/core';
import { parseArgs, UsageError } from '../args.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadRun, loadVlm, readRunMeta } from '@vlmix/fusion';
import type { IO } from '../io.js';
import { isHfFolder, loadHfFolder } from './hf-folder.js';

export const inspectHelp = `Usage: vlmix inspect <preset | folder> [--json]

A folder: a run directory of 'vlmix train --out' (its checkpoint's weights) or a Hugging Face model
folder (config.json + safetensors, e.g. from savePretrained) or a folder written by vlm.save(dir)
(vlmix-model.json: the recipe of mixins, weights and tokenizer).

Shows which implementation serves each hook (per layer, chains outermost first)
and the parameter counts (total, trainable, per component). The hooks run in stages:
host (once per batch, on the integer ids: tokenTypes, positionIds, hostInputs), media
(encodeMedia), embeddings, layers, final.

Options:
  --json   print one JSON object:
           {"preset", "params": {"total", "trainable", "byComponent"},
            "layers": [{"layer", "hooks": {hookName: [implementations, outermost first]}}],
            "global": {hookName: [...]}  (hooks run once per pass or per batch, incl. the host and media stages),
            "stages": [{"stage", "hooks": [hookName, ...]}]  (run order),
            "kinds": {hookName: "chain" | "plain"}, "mixins": [...], "description"}
`;

export interface InspectReport {
  preset: string;
  description: string;
  params: { total: number; trainable: number; byComponent: Record<string, number> };
  layers: { layer: number; hooks: Partial<Record<HookName, string[]>> }[];
  global: Partial<Record<HookName, string[]>>;
  /** The stages of a pass and their hooks, in run order. */
  stages: { stage: string; hooks: HookName[] }[];
  kinds: Record<HookName, 'chain' | 'plain'>;
  mixins: string[];
}

export function inspectModel(preset: string, model: Model, description = getPreset(preset).description): InspectReport {
  const origins = model.hookOrigins();
  return {
    preset,
    description,
    params: model.params.counts(),
    layers: origins.layers,
    global: origins.global,
    stages: HOOK_STAGES.map((s) => ({ stage: s.stage, hooks: [...s.hooks] })),
    kinds: { ...HOOK_KINDS },
    mixins: model.mixinNames(),
  };
}

const fmt = (n: number) => n.toLocaleString('en-US');

export function formatInspect(r: InspectReport): string {
  const lines: string[] = [];
  lines.push(`${r.preset}: ${r.description}`);
  lines.push(`mixins: ${r.mixins.join(', ') || '(none)'}`);
  lines.push('');
  lines.push(`parameters: ${fmt(r.params.total)} total, ${fmt(r.params.trainable)} trainable`);
  const w = Math.max(...Object.keys(r.params.byComponent).map((k) => k.length));
  for (const [k, v] of Object.entries(r.params.byComponent)) lines.push(`  ${k.padEnd(w)}  ${fmt(v).padStart(12)}`);
  lines.push('');
  lines.push('hooks (implementations, outermost first):');
  const chain = (c: string[] | undefined) => (c ?? []).join(' -> ');
  const order = r.stages.flatMap((s) => s.hooks);
  const globals = (Object.keys(r.global) as HookName[]).sort((a, b) => order.indexOf(a) - order.indexOf(b));
  for (const h of globals) lines.push(`  ${h.padEnd(22)} ${chain(r.global[h])}   (${HOST_HOOKS.has(h) ? 'host, once per batch' : 'once per pass'})`);
  const hooks = (Object.keys(r.layers[0]?.hooks ?? {}) as HookName[]).sort((a, b) => order.indexOf(a) - order.indexOf(b));
  for (const h of hooks) {
    // Group consecutive layers with the same chain: "layers 0-3: lora -> base".
    const groups: { from: number; to: number; chain: string }[] = [];
    for (const l of r.layers) {
      const c = chain(l.hooks[h]);
      const last = groups[groups.length - 1];
      if (last && last.chain === c && last.to === l.layer - 1) last.to = l.layer;
      else groups.push({ from: l.layer, to: l.layer, chain: c });
    }
    const desc = groups.map((g) => `${g.from === g.to ? `layer ${g.from}` : `layers ${g.from}-${g.to}`}: ${g.chain}`).join('; ');
    lines.push(`  ${h.padEnd(22)} ${desc}`);
  }
  return lines.join('\n');
}

export async function runInspect(argv: string[], { out, err }: IO): Promise<number> {
  const p = parseArgs(argv, { booleans: ['json', 'help'] });
  if (p.flags.has('help')) {
    out(inspectHelp);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UsageError(`inspect takes one preset name, got ${p.positionals.length}`);
  const preset = p.positionals[0]!;
  if (existsSync(join(preset, 'vlmix-run.json'))) {
    const vlm = await loadRun(preset, { onWarning: (m) => err(`warning: ${m}`) });
    try {
      const meta = await readRunMeta(preset);
      const r = inspectModel(preset, vlm.model, `run directory: preset ${meta.preset}, seed ${meta.seed} (${getPreset(meta.preset).description})`);
      out(p.flags.has('json') ? JSON.stringify(r) : formatInspect(r));
    } finally {
      vlm.dispose();
    }
    return 0;
  }
  if (isModelFolder(preset)) {
    const vlm = loadVlm(preset);
    try {
      const r = inspectModel(preset, vlm.model, `saved model folder: ${vlm.preset ? `built from preset ${vlm.preset.name}, ` : ''}${vlm.description}`);
      out(p.flags.has('json') ? JSON.stringify(r) : formatInspect(r));
    } finally {
      vlm.dispose();
    }
    return 0;
  }
  const hf = isHfFolder(preset) ? loadHfFolder(preset) : null;
  const model = hf ? hf.model : createModel(preset);
  try {
    const r = hf
      ? inspectModel(preset, model, `Hugging Face folder: ${String(hf.hfConfig.model_type)} (${String((hf.hfConfig.architectures as string[] | undefined)?.[0] ?? hf.kind)})`)
      : inspectModel(preset, model);
    out(p.flags.has('json') ? JSON.stringify(r) : formatInspect(r));
  } finally {
    model.dispose();
  }
  return 0;
}
