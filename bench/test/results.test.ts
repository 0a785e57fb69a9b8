import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordResults } from '../lib/report.js';

const paired = (date: string) =>
  `## ${date} — hot path, paired slices (bench/paired.ts)\n\n- code: abc1234\n\n| proxy | CPU |\n|---|--:|\n| x | ${date.slice(-3)} |\n`;
const revocation = (date: string) =>
  `## ${date} — cross-replica revocation (bench/revocation.ts)\n\n- code: abc1234\n`;

describe('the results file of a bench', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sessiongate-bench-results-'));
    file = join(dir, 'results', 'paired.md');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('is created, with a title saying it holds the latest run only, when absent', async () => {
    await recordResults(file, 'paired', paired('2026-12-02T06:54:03Z'));
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^# sessiongate benchmark results\n\nThe latest run only/);
    expect(text.endsWith(`\n${paired('2026-12-02T06:54:03Z')}`)).toBe(true);
  });

  it("holds the latest run only: a run replaces its bench's section in place and keeps the others", async () => {
    await recordResults(file, 'paired', paired('2026-12-01T10:00:00Z'));
    await recordResults(file, 'revocation', revocation('2026-12-01T11:00:00Z'));
    await recordResults(file, 'paired', paired('2026-12-02T12:00:00Z'));
    const headings = (await readFile(file, 'utf8')).split('\n').filter((l) => l.startsWith('## '));
    expect(headings).toEqual([
      '## 2026-12-02T12:00:00Z — hot path, paired slices (bench/paired.ts)',
      '## 2026-12-01T11:00:00Z — cross-replica revocation (bench/revocation.ts)',
    ]);
  });

  it('refuses a section whose heading does not name the bench, instead of misplacing it', async () => {
    await expect(recordResults(file, 'paired', revocation('2026-12-02T12:00:00Z'))).rejects.toThrow(
      /must start with a "## \.\.\. \(bench\/paired\.ts\)" heading/,
    );
  });
});
