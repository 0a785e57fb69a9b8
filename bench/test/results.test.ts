import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordResults } from '../lib/report.js';

const HOT_PAIRED = '--meter cpu --schedule paired';
const HOT_CALLGRIND = '--meter callgrind --schedule sequential';
const hot = (date: string, variant = HOT_PAIRED) =>
  `## ${date} — hot path (bench/hot.ts ${variant})\n\n- code: abc1234\n\n| proxy | CPU |\n|---|--:|\n| x | ${date.slice(-3)} |\n`;
const revocation = (date: string) =>
  `## ${date} — cross-replica revocation (bench/revocation.ts)\n\n- code: abc1234\n`;

const liveTabs = (date: string) =>
  `## ${date} — open tabs under ui.liveSignOut (bench/live-tabs.ts)\n\n- code: abc1234\n`;

const headings = async (file: string) =>
  (await readFile(file, 'utf8')).split('\n').filter((l) => l.startsWith('## '));

describe('the results file of a bench', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sessiongate-bench-results-'));
    file = join(dir, 'results', 'hot.md');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('is created, with a title saying it holds the latest run only, when absent', async () => {
    await recordResults(file, 'hot', hot('2026-12-02T06:54:03Z'), HOT_PAIRED);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^# sessiongate benchmark results\n\nThe latest run only/);
    expect(text.endsWith(`\n${hot('2026-12-02T06:54:03Z')}`)).toBe(true);
  });

  it("holds the latest run only: a run replaces its bench's section in place and keeps the others", async () => {
    await recordResults(file, 'hot', hot('2026-12-01T10:00:00Z'), HOT_PAIRED);
    await recordResults(file, 'revocation', revocation('2026-12-01T11:00:00Z'));
    await recordResults(file, 'hot', hot('2026-12-02T12:00:00Z'), HOT_PAIRED);
    expect(await headings(file)).toEqual([
      `## 2026-12-02T12:00:00Z — hot path (bench/hot.ts ${HOT_PAIRED})`,
      '## 2026-12-01T11:00:00Z — cross-replica revocation (bench/revocation.ts)',
    ]);
  });

  it('keeps the latest hot-path run of each meter and schedule, each replacing only its own', async () => {
    await recordResults(file, 'hot', hot('2026-12-01T10:00:00Z'), HOT_PAIRED);
    await recordResults(file, 'hot', hot('2026-12-01T11:00:00Z', HOT_CALLGRIND), HOT_CALLGRIND);
    await recordResults(file, 'hot', hot('2026-12-02T12:00:00Z', HOT_CALLGRIND), HOT_CALLGRIND);
    expect(await headings(file)).toEqual([
      `## 2026-12-01T10:00:00Z — hot path (bench/hot.ts ${HOT_PAIRED})`,
      `## 2026-12-02T12:00:00Z — hot path (bench/hot.ts ${HOT_CALLGRIND})`,
    ]);
  });

  it('keeps the latest live-tabs run beside the other benches', async () => {
    await recordResults(file, 'live-tabs', liveTabs('2026-12-01T10:00:00Z'));
    await recordResults(file, 'revocation', revocation('2026-12-01T11:00:00Z'));
    await recordResults(file, 'live-tabs', liveTabs('2026-12-03T12:00:00Z'));
    expect(await headings(file)).toEqual([
      '## 2026-12-03T12:00:00Z — open tabs under ui.liveSignOut (bench/live-tabs.ts)',
      '## 2026-12-01T11:00:00Z — cross-replica revocation (bench/revocation.ts)',
    ]);
  });

  it('refuses a section whose heading does not name the bench, instead of misplacing it', async () => {
    await expect(recordResults(file, 'hot', revocation('2026-12-02T12:00:00Z'), HOT_PAIRED)).rejects.toThrow(
      /must start with a "## \.\.\. \(bench\/hot\.ts --meter cpu --schedule paired\)" heading/,
    );
  });
});

describe('the committed live-tabs results (bench/results/live-tabs.md)', () => {
  it('hold one run of 10,000 open streams, with the memory per stream', async () => {
    const text = await readFile(join(import.meta.dirname, '../results/live-tabs.md'), 'utf8');
    const sections = text.split('\n').filter((l) => l.startsWith('## '));
    expect(sections).toHaveLength(1);
    expect(sections[0]).toContain('(bench/live-tabs.ts)');
    expect(text).toMatch(
      /\| open streams \(the gateway's `sessiongate_live_signout_streams`\) +\| +10,000 \|/,
    );
    expect(text).toMatch(/\| RSS per open stream +\| +[\d,]+ B \|/);
    expect(text).toMatch(/\| heap per open stream +\| +[\d,]+ B \|/);
  });
});
