/**
 * A small SVG line chart, written by hand (no plotting dependency): panels stacked vertically, each
 * with its own y axis, sharing the x axis (seconds), one polyline per series.
 */

export interface Series {
  readonly label: string;
  readonly points: readonly (readonly [number, number])[];
}

export interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly series: readonly Series[];
}

const WIDTH = 760;
const PANEL_HEIGHT = 170;
const LEFT = 70;
const RIGHT = 150;
const TOP = 28;
const BOTTOM = 26;
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] ?? c);
}

function tick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** The chart: `panels` one under the other, x from 0 to the largest x of any series. */
export function lineChart(title: string, xLabel: string, panels: readonly Panel[]): string {
  const height = panels.length * PANEL_HEIGHT + 30;
  const xs = panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([x]) => x)));
  const xMax = Math.max(1, ...xs);
  const plotW = WIDTH - LEFT - RIGHT;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="16" text-anchor="middle" font-size="13">${escapeXml(title)}</text>`,
  ];
  panels.forEach((panel, i) => {
    const top = 30 + i * PANEL_HEIGHT + TOP;
    const plotH = PANEL_HEIGHT - TOP - BOTTOM;
    const ys = panel.series.flatMap((s) => s.points.map(([, y]) => y));
    const yMax = Math.max(...ys, 0) * 1.05 || 1;
    const x = (v: number) => LEFT + (v / xMax) * plotW;
    const y = (v: number) => top + plotH - (v / yMax) * plotH;
    out.push(
      `<text x="${LEFT}" y="${top - 8}" font-size="12">${escapeXml(`${panel.title} (${panel.unit})`)}</text>`,
      `<rect x="${LEFT}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
    );
    for (const f of [0, 0.5, 1]) {
      out.push(
        `<text x="${LEFT - 6}" y="${y(yMax * f) + 4}" text-anchor="end">${tick(yMax * f)}</text>`,
        `<line x1="${LEFT}" x2="${LEFT + plotW}" y1="${y(yMax * f)}" y2="${y(yMax * f)}" stroke="#eee"/>`,
        `<text x="${x(xMax * f)}" y="${top + plotH + 14}" text-anchor="middle">${tick(xMax * f)}</text>`,
      );
    }
    panel.series.forEach((s, k) => {
      const colour = COLOURS[k % COLOURS.length] as string;
      const points = s.points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
      out.push(
        `<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${points}"/>`,
        `<text x="${LEFT + plotW + 8}" y="${top + 12 + k * 14}" fill="${colour}">${escapeXml(s.label)}</text>`,
      );
    });
  });
  out.push(
    `<text x="${LEFT + plotW / 2}" y="${height - 4}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
