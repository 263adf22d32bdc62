/** A small SVG writer for the report: grouped horizontal bars and log-log line charts. No dependencies. */

export const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

const n2 = (x: number) => (Math.round(x * 100) / 100).toString();

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${n2(x)}" y="${n2(y)}"${attrs ? ` ${attrs}` : ''}>${escapeXml(s)}</text>`;
}

function fmtNum(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (Number.isInteger(v)) return String(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

export interface BarValue {
  series: string;
  value: number;
  /** Optional spread whisker (e.g. p25..p75). */
  lo?: number;
  hi?: number;
}

export interface BarChartSpec {
  title: string;
  unit: string;
  groups: { label: string; values: BarValue[] }[];
  /** Series order (legend and bar order within a group). */
  series: string[];
  /** Logarithmic value axis (default: when values span more than 30x). */
  log?: boolean;
}

/** Grouped horizontal bars: one `<rect class="bar">` per value, whiskers for the spread, values as labels. */
export function barChart(spec: BarChartSpec): string {
  const barH = 14;
  const gap = 10;
  const labelW = 300;
  const plotW = 420;
  const valueW = 90;
  const top = 44;
  const legendH = 22;
  const width = labelW + plotW + valueW;
  const all = spec.groups.flatMap((g) => g.values.map((v) => v.value)).filter((v) => v > 0 && Number.isFinite(v));
  const maxV = all.length ? Math.max(...all.concat(spec.groups.flatMap((g) => g.values.map((v) => v.hi ?? 0)))) : 1;
  const minV = all.length ? Math.min(...all) : 1;
  const log = spec.log ?? maxV / minV > 30;
  const lo = log ? Math.pow(10, Math.floor(Math.log10(minV)) ) : 0;
  const hi = log ? Math.pow(10, Math.ceil(Math.log10(maxV))) : maxV * 1.05;
  const scale = (v: number) => {
    if (!(v > 0)) return 0;
    if (log) return (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * plotW;
    return (v / hi) * plotW;
  };
  const parts: string[] = [];
  let y = top + legendH;
  for (const g of spec.groups) {
    const gh = Math.max(1, g.values.length) * barH;
    parts.push(text(labelW - 8, y + gh / 2 + 4, g.label, 'text-anchor="end" font-size="11"'));
    g.values.forEach((v, i) => {
      const si = Math.max(0, spec.series.indexOf(v.series));
      const by = y + i * barH;
      const w = Math.max(0.5, scale(v.value));
      parts.push(`<rect class="bar" x="${labelW}" y="${n2(by + 1)}" width="${n2(w)}" height="${barH - 2}" fill="${PALETTE[si % PALETTE.length]}"><title>${escapeXml(`${g.label} · ${v.series}: ${fmtNum(v.value)} ${spec.unit}`)}</title></rect>`);
      if (v.lo != null && v.hi != null && v.hi > 0) {
        const x1 = labelW + scale(v.lo);
        const x2 = labelW + scale(v.hi);
        const cy = by + barH / 2;
        parts.push(`<line class="whisker" x1="${n2(x1)}" y1="${n2(cy)}" x2="${n2(x2)}" y2="${n2(cy)}" stroke="#333" stroke-width="1"/>`);
      }
      parts.push(text(labelW + plotW + 4, by + barH - 3, `${fmtNum(v.value)}`, 'font-size="10"'));
    });
    y += gh + gap;
  }
  const height = y + 24;
  // Axis ticks.
  const ticks: number[] = [];
  if (log) for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  else for (let i = 0; i <= 4; i++) ticks.push((hi * i) / 4);
  const axis = ticks.map((t) => {
    const x = labelW + scale(t === 0 ? 0 : t);
    return `<line x1="${n2(x)}" y1="${top + legendH - 4}" x2="${n2(x)}" y2="${n2(y - gap)}" stroke="#ddd" stroke-width="1"/>` +
      text(x, y + 8, fmtNum(t), 'text-anchor="middle" font-size="10" fill="#555"');
  });
  const legend = spec.series.map((s, i) => {
    const lx = labelW + i * 130;
    return `<rect x="${lx}" y="${top}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/>` + text(lx + 14, top + 9, s, 'font-size="11"');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${n2(height)}" width="${width}" height="${n2(height)}" font-family="sans-serif">`,
    `<rect x="0" y="0" width="${width}" height="${n2(height)}" fill="#fff"/>`,
    text(10, 20, spec.title, 'font-size="14" font-weight="bold"'),
    text(10, 36, `${spec.unit}${log ? ' (log scale)' : ''}; whiskers: p25–p75`, 'font-size="11" fill="#555"'),
    ...axis,
    ...legend,
    ...parts,
    '</svg>',
  ].join('\n') + '\n';
}

export interface LineSeries {
  name: string;
  points: { x: number; y: number }[];
  /** Fitted exponent shown in the legend. */
  exponent?: number;
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
}

/** Log-log line chart, one `<polyline class="series">` per series, legend with the fitted exponent. */
export function logLogChart(spec: LineChartSpec): string {
  const width = 640;
  const height = 400;
  const m = { l: 64, r: 20, t: 40, b: 48 };
  const legendW = 0;
  const pw = width - m.l - m.r - legendW;
  const ph = height - m.t - m.b;
  const pts = spec.series.flatMap((s) => s.points).filter((p) => p.x > 0 && p.y > 0);
  const xs = pts.map((p) => p.x);
  const ys = pts.map((p) => p.y);
  const lx0 = Math.log10(xs.length ? Math.min(...xs) : 1);
  const lx1 = Math.log10(xs.length ? Math.max(...xs) : 10);
  const ly0 = Math.floor(Math.log10(ys.length ? Math.min(...ys) : 1));
  const ly1 = Math.ceil(Math.log10(ys.length ? Math.max(...ys) : 10));
  const xr = lx1 - lx0 || 1;
  const yr = ly1 - ly0 || 1;
  const X = (x: number) => m.l + ((Math.log10(x) - lx0) / xr) * pw;
  const Y = (y: number) => m.t + ph - ((Math.log10(y) - ly0) / yr) * ph;
  const parts: string[] = [];
  // Grid: decades on y, the measured x values on x.
  for (let d = ly0; d <= ly1; d++) {
    const y = Y(Math.pow(10, d));
    parts.push(`<line x1="${m.l}" y1="${n2(y)}" x2="${m.l + pw}" y2="${n2(y)}" stroke="#ddd"/>`);
    parts.push(text(m.l - 6, y + 4, fmtNum(Math.pow(10, d)), 'text-anchor="end" font-size="10" fill="#555"'));
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    const px = X(x);
    parts.push(`<line x1="${n2(px)}" y1="${m.t}" x2="${n2(px)}" y2="${m.t + ph}" stroke="#eee"/>`);
    parts.push(text(px, m.t + ph + 14, fmtNum(x), 'text-anchor="middle" font-size="10" fill="#555"'));
  }
  spec.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const ok = s.points.filter((p) => p.x > 0 && p.y > 0).sort((a, b) => a.x - b.x);
    if (ok.length) {
      parts.push(`<polyline class="series" fill="none" stroke="${color}" stroke-width="2" points="${ok.map((p) => `${n2(X(p.x))},${n2(Y(p.y))}`).join(' ')}"/>`);
      for (const p of ok) parts.push(`<circle cx="${n2(X(p.x))}" cy="${n2(Y(p.y))}" r="3" fill="${color}"><title>${escapeXml(`${s.name}: ${fmtNum(p.x)} → ${fmtNum(p.y)}`)}</title></circle>`);
    }
    const ly = m.t + 8 + i * 16;
    const label = s.exponent != null && Number.isFinite(s.exponent) ? `${s.name} (exponent ${s.exponent.toFixed(2)})` : s.name;
    parts.push(`<rect x="${m.l + 8}" y="${ly - 8}" width="10" height="10" fill="${color}"/>` + text(m.l + 22, ly + 1, label, 'font-size="11"'));
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`,
    text(10, 20, spec.title, 'font-size="14" font-weight="bold"'),
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
    ...parts,
    text(m.l + pw / 2, height - 10, `${spec.xLabel} (log)`, 'text-anchor="middle" font-size="11"'),
    text(14, m.t + ph / 2, `${spec.yLabel} (log)`, `text-anchor="middle" font-size="11" transform="rotate(-90 14 ${n2(m.t + ph / 2)})"`),
    '</svg>',
  ].join('\n') + '\n';
}
