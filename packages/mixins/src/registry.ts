/**
 * The catalogue's mixin types, registered so that saved recipes (saveModel / loadModel in @vlmix/core)
 * can rebuild them. The type strings are a contract of saved folders: keep them when renaming a class.
 */
import { registerMixinType, stateKey } from '@vlmix/core';
import { AnyResProjectorMixin } from './connectors/anyres.js';
import { PerceiverResamplerMixin } from './connectors/perceiver.js';
import { PixelShuffleProjectorMixin } from './connectors/pixel-shuffle.js';
import { ImageTokenMixin, ProjectorMixin } from './connectors/projectors.js';
import { InstructQFormerConnectorMixin, QFormerConnectorMixin } from './connectors/qformer.js';
import { QwenResamplerMixin } from './connectors/qwen-resampler.js';
import { GatedCrossAttentionMixin } from './deep/gated-cross-attention.js';
import { HighResCrossAttentionMixin } from './deep/high-res-cross-attention.js';
import { VisualExpertMixin } from './deep/visual-expert.js';
import { VqImageTokenizerMixin, VqTokenMixin } from './image-tokenizer/vq.js';
import { VqganTokenizerMixin } from './image-tokenizer/vqgan.js';
import { MovqTokenizerMixin } from './image-tokenizer/movq.js';
import { AdapterVisualPromptMixin, LlamaAdapterMixin } from './peft/llama-adapter.js';
import { LoraMixin } from './peft/lora.js';
import { PrefixTuningMixin } from './peft/prefix.js';
import { MRopeMixin } from './positions/mrope.js';
import { FuyuPatchMixin } from './vision/fuyu-patches.js';
import { VisionEncoderMixin } from './vision/vit.js';
import { Qwen2VisionMixin } from './vision/qwen2-vision.js';

registerMixinType('VisionEncoderMixin', VisionEncoderMixin);
registerMixinType('FuyuPatchMixin', FuyuPatchMixin);
registerMixinType('ImageTokenMixin', ImageTokenMixin);
registerMixinType('ProjectorMixin', ProjectorMixin);
registerMixinType('AnyResProjectorMixin', AnyResProjectorMixin);
registerMixinType('PixelShuffleProjectorMixin', PixelShuffleProjectorMixin);
registerMixinType('PerceiverResamplerMixin', PerceiverResamplerMixin);
registerMixinType('QFormerConnectorMixin', QFormerConnectorMixin);
registerMixinType('InstructQFormerConnectorMixin', InstructQFormerConnectorMixin);
registerMixinType('QwenResamplerMixin', QwenResamplerMixin);
registerMixinType('GatedCrossAttentionMixin', GatedCrossAttentionMixin);
registerMixinType('HighResCrossAttentionMixin', HighResCrossAttentionMixin);
registerMixinType('VisualExpertMixin', VisualExpertMixin);
registerMixinType('VqImageTokenizerMixin', VqImageTokenizerMixin);
registerMixinType('VqTokenMixin', VqTokenMixin);
registerMixinType('VqganTokenizerMixin', VqganTokenizerMixin);
registerMixinType('MovqTokenizerMixin', MovqTokenizerMixin);
registerMixinType('LlamaAdapterMixin', LlamaAdapterMixin);
registerMixinType('AdapterVisualPromptMixin', AdapterVisualPromptMixin, (o: { inputSize: number; featuresKey: { name: string }; key: { name: string } }) =>
  new AdapterVisualPromptMixin(o.inputSize, stateKey(o.featuresKey.name), stateKey(o.key.name)));
registerMixinType('LoraMixin', LoraMixin);
registerMixinType('PrefixTuningMixin', PrefixTuningMixin);
registerMixinType('MRopeMixin', MRopeMixin);
registerMixinType('Qwen2VisionMixin', Qwen2VisionMixin);
