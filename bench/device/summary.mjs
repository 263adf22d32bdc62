// Summarises a device run (bench/device/run.sh) from its work folder into OUT/summary.md and
// OUT/summary.json: stage statuses, parity counts, every bench row (vlmix vs PyTorch on the same device),
// TF32 matmuls, PyTorch's bf16 matmuls, and the demo's time and accuracy per type, with the issue's goals.
// Plain Node (no dependencies): it runs on the device machine.   usage: node summary.mjs WORK OUT
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [work, out] = process.argv.slice(2);
if (!work || !out) {
  console.error('usage: node bench/device/summary.mjs WORK OUT');
  process.exit(2);
}
const readJson = (p) => {
  try {
    return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : null;
  } catch (e) {
    console.error(`summary: ${p}: ${e.message}`);
    return null;
  }
};
const stages = existsSync(join(work, 'stages.jsonl'))
  ? readFileSync(join(work, 'stages.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
  : [];
const parity = (dir) => {
  const j = readJson(join(work, dir, 'parity.json'));
  return j && { ok: j.ok, summary: j.summary, cuda: j.cuda && { available: j.cuda.available, pass: j.cuda.pass, fail: j.cuda.fail, reason: j.cuda.reason },
    failures: (j.failures ?? []).map((f) => ({ name: f.name, error: String(f.error ?? '').split('\n')[0] })) };
};
// One bench folder, or several (the kernels and arch stages) read as one table.
const benchRows = (...dirs) => {
  const js = dirs.map((d) => readJson(join(work, d, 'results.json'))).filter(Boolean);
  if (!js.length) return null;
  return {
    machine: js[0].machine, torch: js.find((j) => j.torch?.used)?.torch?.note ?? js[0].torch?.note ?? null,
    rows: js.flatMap((j) => j.benchmarks.map((b) => ({ name: b.name, backend: b.backend, unit: b.unit, vlmix: b.median ?? null, torch: b.torch?.median ?? null,
      ratio: b.ratio ?? null, error: b.error ?? null }))),
  };
};
const bf16 = readJson(join(work, 'bf16.json'));
const demo = ['typeA-tiny', 'typeB-tiny', 'typeC-tiny', 'typeD-tiny', 'typeB-tiny-tf32'].map((p) => {
  const j = readJson(join(work, 'demo', p, 'results.json'));
  const r = j?.results?.[0];
  if (!r) return { preset: p, finished: false };
  const single = ['color', 'shape', 'position'].map((k) => r.accuracyByKind?.[k]).filter((x) => x != null);
  return { preset: p, finished: true, backend: j.backend, steps: r.steps, trainSeconds: r.trainSeconds, totalSeconds: j.totalSeconds,
    stepMs: r.stepMs, accuracy: r.accuracy, singleAttribute: single.length ? single.reduce((a, b) => a + b, 0) / single.length : null };
});
const summary = {
  stages, parity: parity('parity'), builtinGemm: parity('builtin'), memcheck: parity('memcheck'),
  bench: benchRows('bench-kernels', 'bench-arch'), large: benchRows('bench-large'), tf32: benchRows('bench-tf32'),
  torchBf16: bf16 && { device: bf16.device, gpu: bf16.gpu ?? null, results: bf16.results.map((r) => ({ id: r.id, ms: r.samples_ms ? median(r.samples_ms) : null, error: r.error ?? null })) },
  demo,
};
writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 1)}\n`);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
const f = (x, d = 3) => (x == null ? '–' : Number(x).toPrecision(d));
const md = ['# Device run summary', ''];
md.push('| stage | exit | seconds | cap |', '|---|---:|---:|---:|', ...stages.map((s) => `| ${s.stage} | ${s.rc} | ${s.seconds} | ${s.cap} |`), '');
for (const [label, p] of [['parity (cuBLAS, FP32)', summary.parity], ['parity (built-in GEMM)', summary.builtinGemm], ['memcheck', summary.memcheck]]) {
  if (!p) continue;
  md.push(`**${label}**: ${p.summary ? `${p.summary.pass} passed, ${p.summary.fail} failed, ${p.summary.skip} skipped` : 'no summary'}` +
    (p.cuda ? ` (vlmix-cuda ${p.cuda.pass ?? 0} passed, ${p.cuda.fail ?? 0} failed${p.cuda.available === false ? `; unavailable: ${p.cuda.reason}` : ''})` : ''));
  for (const x of p.failures.slice(0, 20)) md.push(`- FAIL ${x.name}: ${x.error}`);
  md.push('');
}
for (const [label, b] of [['Bench (FP32; goal: every A–D train step ≤ 1.5× then ≤ 1.0× PyTorch; attention fwd+bwd ≥ 0.5× sdpa)', summary.bench], ['Large matmuls and long attention (FP32)', summary.large], ['TF32 matmuls (goal ≥ 0.7× torch throughput, i.e. ratio ≤ 1.43)', summary.tf32]]) {
  if (!b) continue;
  md.push(`## ${label}`, '', `PyTorch: ${b.torch ?? '–'}`, '', '| benchmark | backend | unit | vlmix | PyTorch | ratio (vlmix time / torch time) |', '|---|---|---|---:|---:|---:|');
  for (const r of b.rows) md.push(`| ${r.name} | ${r.backend} | ${r.unit} | ${r.error ? `error: ${r.error}` : f(r.vlmix)} | ${f(r.torch)} | ${f(r.ratio)} |`);
  md.push('');
}
if (summary.torchBf16) {
  md.push('## PyTorch matmuls (bf16 target for vlmix)', '', '| job | ms |', '|---|---:|', ...summary.torchBf16.results.map((r) => `| ${r.id} | ${r.error ? `error: ${r.error}` : f(r.ms)} |`), '');
}
md.push('## Demo on the device (goal: the four types in under 60 s, accuracy as on CPU ≥ 97% single-attribute)', '',
  '| preset | finished | steps | step ms | train s | held-out acc | single-attribute acc |', '|---|---|---:|---:|---:|---:|---:|');
for (const d of demo) {
  md.push(`| ${d.preset} | ${d.finished ? 'yes' : 'no (cap or error: see demo-*.log)'} | ${d.steps ?? '–'} | ${f(d.stepMs)} | ${f(d.trainSeconds)} | ${d.accuracy == null ? '–' : `${(100 * d.accuracy).toFixed(1)}%`} | ${d.singleAttribute == null ? '–' : `${(100 * d.singleAttribute).toFixed(1)}%`} |`);
}
const trained = demo.filter((d) => d.finished && !d.preset.endsWith('-tf32'));
if (trained.length === 4) md.push('', `Four types trained in ${trained.reduce((a, d) => a + d.trainSeconds, 0).toFixed(1)} s of training time.`);
writeFileSync(join(out, 'summary.md'), `${md.join('\n')}\n`);
console.log(md.join('\n'));
