import { describe, expect, it } from 'vitest';
import * as decisionCache from '../micro/decision-cache.js';
import * as headers from '../micro/headers.js';
import * as path from '../micro/path.js';
import * as tokenId from '../micro/token-id.js';
import * as tokenReader from '../micro/token-reader.js';

// Each piece checks the product code's answer before registering its timings: a change that breaks
// the answer must fail here (in CI) rather than show up as a faster row in results/micro.md.
describe('the micro-benchmarks', () => {
  it.each([
    ['token-id', tokenId.register],
    ['token-reader', tokenReader.register],
    ['path', path.register],
    ['decision-cache', decisionCache.register],
  ] as const)('%s: the piece gives the expected answer before it is timed', (_name, register) => {
    expect(() => register()).not.toThrow();
  });

  it("headers: the builder keeps a trusted peer's x-forwarded-for on a real request", async () => {
    const close = await headers.register();
    await close();
  });
});
