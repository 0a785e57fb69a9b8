/**
 * The README's Troubleshooting table and "Adopting safely" guide stay true to the code: every code the
 * gateway can answer or log (an `SG_...` code or a quoted `session_...` code anywhere in src/) has a row,
 * every row is a code src/ still has, and every metric series the README names is one the gateway
 * exports.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EMAIL_RESULTS, LOGIN_OUTCOMES, Metrics, REQUEST_OUTCOMES } from '../../src/observability/metrics.js';

const root = join(import.meta.dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/**
 * The codes of src/: whole ones, and prefixes of codes built in a template (`SG_ERR_LOGIN_NO_${what}`),
 * each of which needs at least one row that starts with it. `SG_ERR_...` in prose is neither.
 */
function codesInSource(): { codes: Set<string>; prefixes: Set<string> } {
  const codes = new Set<string>();
  const prefixes = new Set<string>();
  for (const file of sourceFiles(join(root, 'src'))) {
    const text = readFileSync(file, 'utf8');
    // Log lines that report no problem carry an event (`event: 'store_up'`), listed as `event: store_up`.
    for (const m of text.matchAll(/\{ event: '([a-z_]+)'/g)) codes.add(`event: ${m[1] as string}`);
    for (const m of text.matchAll(/\bSG_[A-Z0-9]+(?:_[A-Z0-9]+)+(_\$\{)?/g)) {
      const code = m[0].replace(/\$\{$/, '');
      (m[1] === undefined ? codes : prefixes).add(code);
    }
    for (const m of text.matchAll(/['"](session_[a-z_]+)['"]/g)) codes.add(m[1] as string);
  }
  return { codes, prefixes };
}

/** The first cell of every row of the Troubleshooting table. */
function troubleshootingRows(): string[] {
  const start = readme.indexOf('\n## Troubleshooting\n');
  expect(start, 'a "## Troubleshooting" section').toBeGreaterThan(-1);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^\| `([^`]+)` +\|/gm)].map((m) => m[1] as string);
}

describe("the README's troubleshooting table", () => {
  const { codes, prefixes } = codesInSource();
  const rows = troubleshootingRows();

  it('has a row for every code in src/', () => {
    expect(codes.size).toBeGreaterThan(40);
    expect([...codes].filter((c) => !rows.includes(c)).sort()).toEqual([]);
    expect([...prefixes].filter((p) => !rows.some((r) => r.startsWith(p)))).toEqual([]);
  });

  it('has one row per code, and only codes src/ still has', () => {
    expect(rows.filter((r, i) => rows.indexOf(r) !== i)).toEqual([]);
    const stale = rows.filter((r) => !codes.has(r) && ![...prefixes].some((p) => r.startsWith(p)));
    expect(stale).toEqual([]);
  });
});

/** The label values of the labelled series the README names (a new one needs its entry here). */
const LABELS: Record<string, Record<string, readonly string[]>> = {
  sessiongate_requests_total: { outcome: REQUEST_OUTCOMES },
  sessiongate_logins_total: { outcome: LOGIN_OUTCOMES },
  sessiongate_email_deliveries_total: { result: EMAIL_RESULTS },
};

describe("the README's metrics", () => {
  it('names only series the gateway exports', async () => {
    const scrape = await new Metrics({ defaultMetrics: false }).registry.metrics();
    const names = new Set([...scrape.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const named = [...readme.matchAll(/`(sessiongate_[a-z_]+)(?:\{([a-z_]+)="([^"]*)"\})?`/g)];
    expect(named.map((m) => m[0])).toContain('`sessiongate_requests_total{outcome="passed_report_only"}`');
    const unknown = named.filter(
      ([, name, label, value]) =>
        !names.has(name) ||
        (label !== undefined && !LABELS[name as string]?.[label]?.includes(value as string)),
    );
    expect(unknown.map((m) => m[0])).toEqual([]);
  });
});
