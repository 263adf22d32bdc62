/**
 * The system zoo: each system of the taxonomy (Flamingo, CogVLM, LLaVA, BLIP-2, Qwen-VL, Fuyu, Chameleon,
 * ...) as a short recipe of mixins, one file per system, registered as a fusion preset on import so that
 * `vlmix inspect|train`, `vlmix demo --presets` and the bench know it. docs/zoo.md is the table.
 */
import { registerVlmPreset, type VlmPreset } from '../presets.js';
import { blip2 } from './blip2.js';
import { chameleon } from './chameleon.js';
import { cogagent } from './cogagent.js';
import { cogvlm } from './cogvlm.js';
import { emu3 } from './emu3.js';
import { flamingo } from './flamingo.js';
import { fuyu } from './fuyu.js';
import { idefics } from './idefics.js';
import { instructblip } from './instructblip.js';
import { internvl } from './internvl.js';
import { llamaAdapter } from './llama-adapter.js';
import { llava15 } from './llava-1.5.js';
import { llava16 } from './llava-1.6.js';
import { minigpt4 } from './minigpt4.js';
import { qwenVl } from './qwen-vl.js';
import { qwen2Vl } from './qwen2-vl.js';

export { minigpt4QFormerName } from './minigpt4.js';
export { QWEN_VL_GROUNDING_TOKENS, qwenVlBox, qwenVlRef } from './qwen-vl.js';

/** The zoo's presets, one line per system (tiny sizes; same names as the systems). */
export const ZOO_PRESETS: VlmPreset[] = [
  flamingo,
  idefics,
  cogvlm,
  cogagent,
  llava15,
  llava16,
  blip2,
  instructblip,
  minigpt4,
  fuyu,
  internvl,
  qwenVl,
  qwen2Vl,
  llamaAdapter,
  chameleon,
  emu3,
];

for (const p of ZOO_PRESETS) registerVlmPreset(p);
