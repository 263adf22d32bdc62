/**
 * The system zoo: each system of the taxonomy (Flamingo, CogVLM, LLaVA, BLIP-2, Qwen-VL, Fuyu, Chameleon,
 * ...) as a short recipe of mixins, one file per system, registered as a fusion preset on import so that
 * `vlmix inspect|train`, `vlmix demo --presets` and the bench know it. docs/zoo.md is the table.
 */
import { registerVlmPreset, type VlmPreset } from '../presets.js';

/** The zoo's presets, one line per system (tiny sizes; same names as the systems). */
export const ZOO_PRESETS: VlmPreset[] = [
];

for (const p of ZOO_PRESETS) registerVlmPreset(p);
