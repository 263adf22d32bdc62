// The README's example, kept runnable: pnpm exec tsx --conditions=@vlmix/source examples/readme-example.ts
import * as tf from '@tensorflow/tfjs';
import { createLlama, ops } from '@vlmix/core';
import { VisionEncoderMixin, ProjectorMixin, LoraMixin } from '@vlmix/mixins';

// A LLaVA-style model: tiny LLaMA + ViT + MLP projector + LoRA on the attention projections.
const model = createLlama({ vocabSize: 320, hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2 });
model.addMixin('vision', new VisionEncoderMixin({
  vit: { imageSize: 32, patchSize: 8, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128 },
  selectLayer: -1,
}));
const IMAGE = 259; // <image> placeholder id; the 32 px image yields 16 patch tokens
model.addMixin('projector', new ProjectorMixin({ imageTokenId: IMAGE, projector: { kind: 'mlp2x_gelu', inputSize: 64 } }));
model.addMixin('lora', new LoraMixin({ r: 4, targets: ['transformer.layers.*.attention.query_key_value'] }));
model.params.freeze(['transformer.**', 'lm_head.**']); // the base LM stays frozen ...
model.params.unfreeze('transformer.**.lora_*.weight'); // ... except LoRA, which lives under its layers
console.log(new Set(model.params.trainable().map((p) => p.component))); // vision, projector, lora

const ids = [257, ...new Array(16).fill(IMAGE), 72, 105, 33];
const inputIds = tf.tensor2d([ids], undefined, 'int32');
const targets = tf.tensor2d([[...ids.slice(1), -1].map((t, i) => (i < 17 ? -1 : t))], undefined, 'int32');
const pixels = tf.zeros([1, 3, 32, 32]);
const { logits } = model.forward({ inputIds, media: { pixels } });
console.log(model.hookOrigins().layers[0]!.hooks.linear, logits.shape); // [ 'lora', 'base' ] [ 1, 20, 320 ]
console.log('loss', ops.crossEntropyLoss(logits, targets, -1).dataSync()[0]);
