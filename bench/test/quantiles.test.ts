import { describe, expect, it } from 'vitest';
import { bucketQuantile, toBuckets } from '../lib/report.js';
import { propagationRows } from '../revocation.js';

const BOUNDS = [0.1, 0.2, 0.3, 0.5, 1, Infinity].map((le) => ({ le, n: 0 }));

describe('histogram quantiles (bench/lib/report.ts)', () => {
  it('interpolates inside the bucket that holds the rank, as histogram_quantile does', () => {
    // 10 at or under 0.1, 10 more in (0.1, 0.2]: the median is the top of the first bucket.
    const buckets = [
      { le: 0.1, n: 10 },
      { le: 0.2, n: 20 },
      { le: Infinity, n: 20 },
    ];
    expect(bucketQuantile(buckets, 0.5)).toBeCloseTo(0.1, 10);
    expect(bucketQuantile(buckets, 0.75)).toBeCloseTo(0.15, 10);
    expect(bucketQuantile(buckets, 0.25)).toBeCloseTo(0.05, 10);
  });

  it('answers the last finite bound for a rank in the +Inf bucket, and NaN for no observations', () => {
    expect(
      bucketQuantile(
        [
          { le: 1, n: 1 },
          { le: Infinity, n: 4 },
        ],
        0.99,
      ),
    ).toBe(1);
    expect(bucketQuantile(BOUNDS, 0.5)).toBeNaN();
  });

  it('counts raw values into cumulative buckets of the given bounds', () => {
    expect(toBuckets([0.05, 0.15, 0.15, 0.4, 7], BOUNDS).map((b) => b.n)).toEqual([1, 3, 3, 4, 4, 5]);
  });
});

describe('propagation against the floor (bench/revocation.ts)', () => {
  const floor = Array.from({ length: 100 }, (_, i) => 0.1 + (i % 10) * 0.01);

  it('is met when both quantiles are within 1.25x of the floor read through the same buckets', () => {
    const { rows, met } = propagationRows(toBuckets(floor, BOUNDS), floor);
    expect(met).toBe(true);
    expect(rows.map((r) => r[4])).toEqual(['1.00x ok', '1.00x ok']);
  });

  it('is not met when the propagation is slower than 1.25x of the floor', () => {
    const slow = floor.map((x) => x * 2);
    const { rows, met } = propagationRows(toBuckets(slow, BOUNDS), floor);
    expect(met).toBe(false);
    expect(rows[0]?.[4]).toMatch(/OVER$/);
  });

  it('is not met without any propagation observed', () => {
    expect(propagationRows([], floor).met).toBe(false);
  });
});
