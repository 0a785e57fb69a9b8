/**
 * The results of the mass-revocation and soak benches as committed: one run each, the figures the
 * issue asks for present and consistent (the soak's CSV with its Markdown and chart), and the chart
 * writer they are drawn with.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lineChart } from '../lib/svg-plot.js';

const results = resolve(import.meta.dirname, '../results');
const read = (name: string) => readFile(resolve(results, name), 'utf8');

/** The cells of the Markdown table rows whose first cell is `first`. */
function row(md: string, first: string): string[] {
  const cells = md
    .split('\n')
    .filter((l) => l.startsWith('| '))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    )
    .find((c) => c[0] === first);
  if (cells === undefined) throw new Error(`no row ${first}`);
  return cells;
}

const count = (cell: string | undefined) => Number((cell ?? '').replace(/,/g, '').split(' ')[0]);

describe('results/mass-revocation.md', () => {
  it('holds one run of the three cases, each with far fewer messages than tokens and no stale accept', async () => {
    const md = await read('mass-revocation.md');
    expect(md.match(/^## .*\(bench\/mass-revocation\.ts\)$/gm)).toHaveLength(1);
    expect(md).toMatch(/1-minute load average [\d.]+ at the start/);
    const header = row(md, 'case');
    for (const name of ['per-user', 'bulk', 'expiry']) {
      const cells = row(md, name);
      const [tokens, messages, refused, accepted] = [
        'tokens',
        'messages',
        'refused A / B',
        'accepted after',
      ].map((h) => cells[header.indexOf(h)]);
      expect(count(tokens), name).toBe(10_000);
      expect(count(messages), name).toBeLessThan(count(tokens) / 10);
      expect(refused, name).toBe('10,000 / 10,000');
      expect(accepted, name).toBe('0');
    }
  });
});

describe('results/soak.*', () => {
  it('samples both replicas every 10 s for the run the Markdown reports, in the CSV the chart draws', async () => {
    const [md, csv, svg] = await Promise.all([read('soak.md'), read('soak.csv'), read('soak.svg')]);
    expect(md.match(/^## .*\(bench\/soak\.ts\)$/gm)).toHaveLength(1);
    expect(md).toMatch(/load average \(1\/5\/15 min\) at the start [\d.]+ \/ [\d.]+ \/ [\d.]+, at the end/);
    const [header, ...lines] = csv.trim().split('\n');
    expect(header).toBe(
      'seconds,replica,rss_bytes,heap_used_bytes,open_fds,eventloop_p99_ms,redis_used_memory_bytes,ops,errors,stale_accepts',
    );
    const rows = lines.map((l) => l.split(','));
    const replicas = [...new Set(rows.map((r) => r[1]))];
    expect(replicas).toEqual(['soak-a', 'soak-b']);
    const times = rows.filter((r) => r[1] === 'soak-a').map((r) => Number(r[0]));
    const minutes = Number(/ran ([\d.]+) min open loop/.exec(md)?.[1]);
    expect(times[times.length - 1]).toBeGreaterThanOrEqual(minutes * 60 - 1);
    for (let i = 1; i < times.length; i++)
      expect((times[i] as number) - (times[i - 1] as number)).toBeLessThanOrEqual(15);
    for (const r of rows) {
      expect(r.slice(2, 7).every((v) => Number(v) > 0)).toBe(true);
      expect(r.slice(7).every((v) => Number.isInteger(Number(v)) && Number(v) >= 0)).toBe(true);
    }
    // The last sample's counters are the Markdown's.
    const last = rows[rows.length - 1] as string[];
    expect(row(md, 'error responses')[1]?.split(' ')[0]).toBe(last[8]);
    expect(row(md, 'stale accepts (a token revoked over 1 s before answered 200)')[1]).toBe(last[9]);
    // One polyline per replica in four panels, one for Redis.
    expect(svg.match(/<polyline /g)).toHaveLength(9);
    // Every series drawn: a series whose samples were not found has no points.
    expect(svg).not.toContain('points=""');
  });
});

describe('lineChart', () => {
  it('draws each series as a polyline scaled into its panel, and escapes labels', () => {
    const svg = lineChart('a <b>', 's', [
      {
        title: 'p',
        unit: 'u',
        series: [
          {
            label: 'x&y',
            points: [
              [0, 0],
              [10, 5],
              [20, 10],
            ],
          },
        ],
      },
    ]);
    expect(svg).toContain('a &lt;b&gt;');
    expect(svg).toContain('x&amp;y');
    const points = /points="([^"]+)"/
      .exec(svg)?.[1]
      ?.split(' ')
      .map((p) => p.split(',').map(Number));
    expect(points).toHaveLength(3);
    const [first, , last] = points as [number[], number[], number[]];
    // x grows left to right, y up (SVG y down): the last point is right of and above the first.
    expect(last[0]).toBeGreaterThan(first[0] as number);
    expect(last[1]).toBeLessThan(first[1] as number);
  });
});
