import { describe, expect, it } from 'vitest';
import { BackgroundWrites } from '../../src/sessions/background-writes.js';

/** A write that finishes when the test says so. */
function gate(): { promise: Promise<void>; open: () => void; fail: (err: Error) => void } {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

function noErrors(): (err: unknown) => void {
  return (err) => {
    throw err;
  };
}

describe('BackgroundWrites', () => {
  it('runs at most `concurrency` writes at once and starts the next as one finishes', async () => {
    const writes = new BackgroundWrites({ concurrency: 2, onError: noErrors() });
    const gates = [gate(), gate(), gate()];
    const started: number[] = [];
    let thirdStarted!: () => void;
    const third = new Promise<void>((resolve) => (thirdStarted = resolve));
    gates.forEach((g, i) =>
      writes.add(`k${i}`, 'test', () => {
        started.push(i);
        if (i === 2) thirdStarted();
        return g.promise;
      }),
    );
    expect(started).toEqual([0, 1]);
    expect(writes.waiting).toBe(1);
    gates[0]?.open();
    await third;
    expect(started).toEqual([0, 1, 2]);
    expect(writes.running).toBe(2);
    gates[1]?.open();
    gates[2]?.open();
    await writes.drained();
    expect(writes.running).toBe(0);
  });

  it('replaces a waiting write of the same key, keeping its place in line', async () => {
    const writes = new BackgroundWrites({ concurrency: 1, onError: noErrors() });
    const first = gate();
    const ran: string[] = [];
    writes.add('busy', 'test', () => first.promise);
    writes.add('touch a', 'test', async () => void ran.push('a at 1'));
    writes.add('touch b', 'test', async () => void ran.push('b'));
    writes.add('touch a', 'test', async () => void ran.push('a at 2'));
    expect(writes.waiting).toBe(2);
    first.open();
    await writes.drained();
    expect(ran).toEqual(['a at 2', 'b']);
  });

  it('cancels a waiting write, never one in flight', async () => {
    const writes = new BackgroundWrites({ concurrency: 1, onError: noErrors() });
    const first = gate();
    const ran: string[] = [];
    writes.add('end a', 'test', async () => {
      await first.promise;
      ran.push('a');
    });
    writes.add('end b', 'test', async () => void ran.push('b'));
    writes.add('end c', 'test', async () => void ran.push('c'));
    expect(writes.cancel('end a')).toBe(false);
    expect(writes.cancel('end b')).toBe(true);
    expect(writes.cancel('end b')).toBe(false);
    first.open();
    await writes.drained();
    expect(ran).toEqual(['a', 'c']);
  });

  it('does not wait for a cancelled write to be drained', async () => {
    const writes = new BackgroundWrites({ concurrency: 1, onError: noErrors() });
    const first = gate();
    writes.add('busy', 'test', () => first.promise);
    writes.add('end a', 'test', () => Promise.resolve());
    const drained = writes.drained();
    first.open();
    writes.cancel('end a');
    await drained;
    expect([writes.running, writes.waiting]).toEqual([0, 0]);
  });

  it('reports a failed write, synchronous throw included, and goes on with the rest', async () => {
    const errors: string[] = [];
    const writes = new BackgroundWrites({
      concurrency: 1,
      onError: (err, what) => errors.push(`${what}: ${(err as Error).message}`),
    });
    const ran: string[] = [];
    writes.add('a', 'touch', () => Promise.reject(new Error('store down')));
    writes.add('b', 'expire', () => {
      throw new Error('bad input');
    });
    writes.add('c', 'touch', async () => void ran.push('c'));
    await writes.drained();
    expect(errors).toEqual(['touch: store down', 'expire: bad input']);
    expect(ran).toEqual(['c']);
  });

  it('is drained at once when idle', async () => {
    const writes = new BackgroundWrites({ concurrency: 4, onError: noErrors() });
    await expect(writes.drained()).resolves.toBeUndefined();
  });

  it('refuses a concurrency that is not a positive integer', () => {
    expect(() => new BackgroundWrites({ concurrency: 0, onError: noErrors() })).toThrow(RangeError);
    expect(() => new BackgroundWrites({ concurrency: 1.5, onError: noErrors() })).toThrow(/positive integer/);
  });
});
