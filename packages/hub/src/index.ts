// @vlmix/hub: a Hugging Face folder in one call — config.json + safetensors -> vlmix model,
// tokenizer.json -> vlmix Tokenizer, chat templates, preprocessor_config.json -> pixel values.
export * from './pretrained.js';
export * from './tokenizer.js';
export * from './chat-template.js';
export { readJsonFile } from './files.js';
export * from './image-processor.js';
export * from './vision.js';
export * from './llava.js';
export * from './save.js';
export * from './export-llava.js';
