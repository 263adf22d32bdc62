import { describe, expect, it } from 'vitest';
import { barChart, escapeXml, logLogChart } from '../src/svg.js';

/** Minimal well-formedness check: balanced tags (a stack), one root <svg> with a viewBox. */
function checkSvg(svg: string): { tags: string[] } {
  const stack: string[] = [];
  const tags: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"]*")*)\s*(\/?)>/g;
  let m: RegExpExecArray | null;
  let last = 0;
  let roots = 0;
  const body = svg.trim();
  while ((m = re.exec(body))) {
    // Nothing tag-like between matches (catches unescaped '<' and broken attributes).
    expect(body.slice(last, m.index)).not.toMatch(/[<>]/);
    last = m.index + m[0].length;
    const [, close, name, attrs, selfClose] = m;
    if (close) {
      expect(stack.pop()).toBe(name);
    } else {
      if (stack.length === 0) roots++;
      tags.push(name!);
      if (name === 'svg') expect(attrs).toMatch(/viewBox="0 0 [\d.]+ [\d.]+"/);
      if (!selfClose) stack.push(name!);
    }
  }
  expect(body.slice(last)).toBe('');
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
  expect(tags[0]).toBe('svg');
  return { tags };
}

describe('svg', () => {
  it('bar chart: well-formed, one bar per value, escaped labels', () => {
    const svg = barChart({
      title: 'matmul <&> "kernels"',
      unit: 'ms',
      series: ['cpu', 'vlmix-cpu', 'PyTorch'],
      groups: [
        { label: '256x256x256', values: [{ series: 'cpu', value: 10, lo: 9, hi: 11 }, { series: 'vlmix-cpu', value: 1 }, { series: 'PyTorch', value: 0.8 }] },
        { label: '1024 & more', values: [{ series: 'cpu', value: 700 }, { series: 'vlmix-cpu', value: 20, lo: 19, hi: 22 }] },
      ],
    });
    const { tags } = checkSvg(svg);
    expect(tags.filter((t) => t === 'rect').length).toBeGreaterThanOrEqual(5);
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(5);
    expect(svg.match(/<line class="whisker"/g)).toHaveLength(2);
    expect(svg).toContain('matmul &lt;&amp;&gt; &quot;kernels&quot;');
    expect(svg).toContain('1024 &amp; more');
    expect(svg).toContain('(log scale)'); // 700 / 0.8 spans more than 30x
  });

  it('bar widths are proportional on a linear axis', () => {
    const svg = barChart({ title: 't', unit: 'ms', series: ['a'], log: false, groups: [{ label: 'x', values: [{ series: 'a', value: 2 }] }, { label: 'y', values: [{ series: 'a', value: 4 }] }] });
    checkSvg(svg);
    const widths = [...svg.matchAll(/<rect class="bar"[^>]*width="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(widths).toHaveLength(2);
    expect(widths[1]! / widths[0]!).toBeCloseTo(2, 2);
  });

  it('log-log chart: one polyline per series, exponent in the legend', () => {
    const svg = logLogChart({
      title: 'train step vs seq',
      xLabel: 'seq',
      yLabel: 'ms',
      series: [
        { name: 'vlmix-cpu', points: [{ x: 32, y: 1 }, { x: 64, y: 2.1 }, { x: 128, y: 4.5 }], exponent: 1.08 },
        { name: 'PyTorch', points: [{ x: 32, y: 2 }, { x: 64, y: 4 }], exponent: 1 },
      ],
    });
    checkSvg(svg);
    expect(svg.match(/<polyline class="series"/g)).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(5);
    expect(svg).toContain('vlmix-cpu (exponent 1.08)');
    expect(svg).toContain('PyTorch (exponent 1.00)');
  });

  it('the checker itself rejects unbalanced markup', () => {
    expect(() => checkSvg('<svg viewBox="0 0 1 1"><g></svg>')).toThrow();
    expect(escapeXml(`a<b>&"'`)).toBe('a&lt;b&gt;&amp;&quot;&apos;');
  });
});
