// LLaVA-1.6 (LLaVA-NeXT) unpadding in a model: with media.image_sizes the tile grid drops its letterbox rows
// or columns (HF unpad_image), so a non-square image takes fewer placeholders.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { makeImage } from '@vlmix/data';
import { createVlm } from '../src/index.js';

describe('llava-1.6 with media.image_sizes: the unpadded grid in a model', () => {
  it('a wide image takes fewer placeholders; the token count must match them', async () => {
    const { anyResTokenCount } = await import('@vlmix/mixins');
    const { specialId: sid } = await import('@vlmix/data');
    const vlm = createVlm('llava-1.6');
    const img = makeImage(32, 32, [10, 200, 10]);
    const media = { ...vlm.construction.extraMedia!(1, [{ image: img, question: 'q' }]), image_sizes: [[10, 40]] };
    const n = anyResTokenCount([2, 2], 4, [10, 40]);
    expect(n).toBeLessThan(vlm.imageTokens);
    const ids = [[1, ...new Array(n).fill(sid(vlm.tokenizer, '<image>')), 2]];
    const out = vlm.model.forward({ inputIds: ids, media });
    expect(out.logits.shape).toEqual([1, n + 2, vlm.tokenizer.vocabSize]);
    expect(() => vlm.model.forward({ inputIds: [[1, ...new Array(vlm.imageTokens).fill(sid(vlm.tokenizer, '<image>')), 2]], media })).toThrow(/placeholder/);
    tf.dispose([out.logits, ...Object.values(media as Record<string, unknown>).filter((v): v is tf.Tensor => v instanceof tf.Tensor)]);
    vlm.dispose();
  });
});
