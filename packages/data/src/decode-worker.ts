// A DecodePool worker: decode requests in, pixels out (transferred). See decode-pool.ts.
import { parentPort } from 'node:worker_threads';
import { loadImageFile, loadImageFileSharp, type DecodeRequest } from './decode-pool.js';

parentPort!.on('message', async (m: DecodeRequest & { id: number }) => {
  try {
    const img = m.decoder === 'sharp' ? await loadImageFileSharp(m) : loadImageFile(m);
    const data = img.data.byteOffset === 0 && img.data.byteLength === img.data.buffer.byteLength ? img.data : img.data.slice();
    parentPort!.postMessage({ id: m.id, width: img.width, height: img.height, data }, [data.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
