/**
 * Gateway memory per cached decision (issue 16): the RSS and heap slope of the decision cache between
 * 100k and 1M cached live tokens, filled as the session service fills it on a store read (a record
 * decoded afresh per read, as the Redis store's HGETALL answers are), in this process only: nothing
 * else grows with the entries. Run with --expose-gc (the `cache-memory` script does).
 *
 *   npm run cache-memory -- [--sizes 100000,1000000] [--tokens 1]
 */
import { DecisionCache } from '../src/cache/decision-cache.js';
import { createTokenIdOf } from '../src/tokens/token-id.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : (process.argv[i + 1] ?? fallback);
}

const sizes = arg('sizes', '100000,1000000').split(',').map(Number);
const tokensPerSession = Number(arg('tokens', '1'));
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

const UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const tokenIdOf = createTokenIdOf('bench-secret-bench-secret-bench-secret', { memo: 10_000 });
const now = Date.now();
const cache = new DecisionCache({ max: Math.max(...sizes) * tokensPerSession + 1, maxStaleness: 3_600_000 });

/** The record of session i, as a store read decodes it: every string fresh, none shared. */
function decoded(i: number, tokenIds: string[]): unknown {
  const base = JSON.stringify({
    id: `s${i.toString(36)}${'x'.repeat(16)}`,
    user: `user-${i}@example.com`,
    createdAt: now,
    expiresAt: now + 86_400_000,
    ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    userAgent: UA,
  });
  return {
    ...(JSON.parse(base) as object),
    state: 'live',
    lastSeenAt: now,
    tokenIds: JSON.parse(JSON.stringify(tokenIds)),
  };
}

function fill(from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const ids = Array.from({ length: tokensPerSession }, (_, t) =>
      tokenIdOf(`token-${i}-${t}-${'r'.repeat(24)}`),
    );
    for (const id of ids) {
      // One store read per token, each decoding its own copy of the record (the Redis store's lookup).
      const ticket = cache.beginFill(id);
      const record = decoded(i, ids) as Parameters<DecisionCache['makeDecision']>[1];
      cache.completeFill(ticket, cache.makeDecision('live', record, now));
    }
  }
}

/**
 * `external` already counts `arrayBuffers` (the packed cache's typed arrays): heap is the V8 heap,
 * offHeap what it holds outside (until 2026-12-03 this bench added arrayBuffers twice, which did not
 * matter while the cache held no typed arrays).
 */
function measure(): { rss: number; heap: number; offHeap: number } {
  for (let i = 0; i < 4; i++) gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, offHeap: m.external };
}

const points: { sessions: number; entries: number; rss: number; heap: number; offHeap: number }[] = [];
let filled = 0;
for (const n of [...sizes].sort((a, b) => a - b)) {
  fill(filled, n);
  filled = n;
  points.push({ sessions: n, entries: cache.size, ...measure() });
}
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
console.log(`node ${process.version}, ${tokensPerSession} token(s) per session, cache entries = tokens`);
console.log('| sessions | cached entries | RSS | V8 heap used | off-heap (external) |');
console.log('|---:|---:|---:|---:|---:|');
for (const p of points)
  console.log(
    `| ${p.sessions.toLocaleString('en')} | ${p.entries.toLocaleString('en')} | ${mib(p.rss)} | ${mib(p.heap)} | ${mib(p.offHeap)} |`,
  );
const [lo, hi] = [points[0], points[points.length - 1]];
if (lo && hi && hi.entries > lo.entries) {
  const d = hi.entries - lo.entries;
  console.log(
    `\nslope per cached entry: RSS ${Math.round((hi.rss - lo.rss) / d)} B, V8 heap ${Math.round((hi.heap - lo.heap) / d)} B, off-heap ${Math.round((hi.offHeap - lo.offHeap) / d)} B`,
  );
}
