/**
 * The WebSocket frame boundary tracker of the upgrade tunnel (RFC 6455 section 5.2): it follows frame
 * headers in the server-to-client stream so a close frame can be injected between frames, never inside
 * one. Frames here are built by hand, byte for byte, as a server would write them.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameBoundary } from '../../src/proxy/upgrade.js';

interface FrameSpec {
  readonly fin?: boolean;
  readonly opcode: number;
  readonly payload: Buffer;
  readonly mask?: Buffer;
  /** Force a longer length form than the payload needs (legal on the wire, if wasteful). */
  readonly lengthForm?: 7 | 16 | 64;
}

/** One frame as bytes: header (7, 16 or 64-bit length, optional mask key) then the payload. */
function frame({ fin = true, opcode, payload, mask, lengthForm }: FrameSpec): Buffer {
  const n = payload.length;
  const form = lengthForm ?? (n < 126 ? 7 : n < 0x10000 ? 16 : 64);
  const maskBit = mask === undefined ? 0 : 0x80;
  const head = [(fin ? 0x80 : 0) | opcode];
  if (form === 7) head.push(maskBit | n);
  else if (form === 16) head.push(maskBit | 126, (n >> 8) & 0xff, n & 0xff);
  else {
    head.push(maskBit | 127);
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(n));
    head.push(...len);
  }
  if (mask !== undefined) head.push(...mask);
  const body = mask === undefined ? payload : Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from(head), body]);
}

const text = (s: string, extra: Partial<FrameSpec> = {}): Buffer =>
  frame({ opcode: 0x1, payload: Buffer.from(s), ...extra });

function closeFrame(code: number, reason: string): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return frame({ opcode: 0x8, payload });
}

/** Feeds the stream one byte at a time; the offsets (bytes fed so far) where the tracker was at a boundary. */
function boundariesOf(stream: Buffer): number[] {
  const frames = new FrameBoundary();
  const at: number[] = [];
  for (let i = 0; i < stream.length; i++) {
    frames.feed(stream.subarray(i, i + 1));
    if (frames.atBoundary()) at.push(i + 1);
  }
  return at;
}

/** The offsets where each frame of `parts` ends, in the stream of their concatenation. */
function ends(parts: readonly Buffer[]): number[] {
  let at = 0;
  return parts.map((p) => (at += p.length));
}

describe('the WebSocket frame boundary tracker', () => {
  it('starts at a boundary, leaves it inside a frame and is back at its last byte', () => {
    const frames = new FrameBoundary();
    expect(frames.atBoundary()).toBe(true);
    const f = text('hello');
    frames.feed(f.subarray(0, 3));
    expect(frames.atBoundary()).toBe(false);
    frames.feed(f.subarray(3));
    expect(frames.atBoundary()).toBe(true);
  });

  it('is not at a boundary after a lone first header byte', () => {
    const frames = new FrameBoundary();
    frames.feed(text('x').subarray(0, 1));
    expect(frames.atBoundary()).toBe(false);
  });

  it('counts a frame with an empty payload as ending with its header', () => {
    const parts = [frame({ opcode: 0x9, payload: Buffer.alloc(0) }), text('after')];
    expect(boundariesOf(Buffer.concat(parts))).toEqual(ends(parts));
  });

  it('finds the end of every frame of a fragmented message (text, continuation, final continuation)', () => {
    const parts = [
      text('first ', { fin: false }),
      frame({ fin: false, opcode: 0x0, payload: Buffer.from('second ') }),
      // A control frame may come between fragments.
      frame({ opcode: 0x9, payload: Buffer.from('ping') }),
      frame({ fin: true, opcode: 0x0, payload: Buffer.from('last') }),
    ];
    expect(boundariesOf(Buffer.concat(parts))).toEqual(ends(parts));
  });

  it('reads a 16-bit payload length (126 marker)', () => {
    const parts = [frame({ opcode: 0x2, payload: Buffer.alloc(300, 7) }), text('next')];
    expect(parts[0]?.subarray(1, 4)).toEqual(Buffer.from([126, 0x01, 0x2c]));
    expect(boundariesOf(Buffer.concat(parts))).toEqual(ends(parts));
  });

  it('reads a 64-bit payload length (127 marker)', () => {
    const parts = [frame({ opcode: 0x2, payload: Buffer.alloc(70_000, 1) }), text('next')];
    expect(parts[0]?.[1]).toBe(127);
    const frames = new FrameBoundary();
    frames.feed(Buffer.concat(parts).subarray(0, (parts[0] as Buffer).length - 1));
    expect(frames.atBoundary()).toBe(false);
    frames.feed(Buffer.concat(parts).subarray((parts[0] as Buffer).length - 1, (parts[0] as Buffer).length));
    expect(frames.atBoundary()).toBe(true);
  });

  it('honours a longer length form than needed (a 5-byte payload sent with 16 and 64-bit lengths)', () => {
    const parts = [
      frame({ opcode: 0x1, payload: Buffer.from('short'), lengthForm: 16 }),
      frame({ opcode: 0x1, payload: Buffer.from('short'), lengthForm: 64 }),
      text('x'),
    ];
    expect(boundariesOf(Buffer.concat(parts))).toEqual(ends(parts));
  });

  it('skips the 4-byte mask key of a masked frame', () => {
    const mask = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
    const parts = [
      text('masked', { mask }),
      frame({ opcode: 0x2, payload: Buffer.alloc(200, 9), mask }),
      text('plain'),
    ];
    expect(boundariesOf(Buffer.concat(parts))).toEqual(ends(parts));
  });

  it('treats a close frame as a frame like any other (its code and reason are payload)', () => {
    const parts = [text('bye soon'), closeFrame(1000, 'normal closure'), text('late')];
    expect(boundariesOf(Buffer.concat(parts))).toEqual(ends(parts));
  });

  it('says how many bytes of a chunk finish the frame in flight', () => {
    const first = text('finish me');
    const second = text('next one');
    const frames = new FrameBoundary();
    frames.feed(first.subarray(0, 4));
    const rest = Buffer.concat([first.subarray(4), second]);
    expect(frames.bytesToBoundary(rest)).toBe(first.length - 4);
    // Asking changes nothing: the tracker is still inside the first frame.
    expect(frames.atBoundary()).toBe(false);
  });

  it('answers 0 at a boundary and -1 when the frame goes on past the chunk', () => {
    const f = frame({ opcode: 0x2, payload: Buffer.alloc(1000) });
    const frames = new FrameBoundary();
    expect(frames.bytesToBoundary(f)).toBe(0);
    frames.feed(f.subarray(0, 10));
    expect(frames.bytesToBoundary(f.subarray(10, 500))).toBe(-1);
  });

  it('finds the same boundaries however the stream is split (property)', () => {
    const frameSpec = fc.record({
      fin: fc.boolean(),
      opcode: fc.constantFrom(0x0, 0x1, 0x2, 0x8, 0x9, 0xa),
      payload: fc.oneof(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ minLength: 126, maxLength: 400 })),
      mask: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: undefined }),
      lengthForm: fc.option(fc.constantFrom<16 | 64>(16, 64), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.array(frameSpec, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (specs, cutSeeds) => {
          const parts = specs.map((s) =>
            frame({
              fin: s.fin,
              opcode: s.opcode,
              payload: Buffer.from(s.payload),
              mask: s.mask === undefined ? undefined : Buffer.from(s.mask),
              lengthForm: s.lengthForm,
            }),
          );
          const stream = Buffer.concat(parts);
          const frameEnds = ends(parts);
          const cuts = [...new Set(cutSeeds.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const frames = new FrameBoundary();
          let from = 0;
          for (const cut of [...cuts, stream.length]) {
            frames.feed(stream.subarray(from, cut));
            from = cut;
            expect(frames.atBoundary()).toBe(cut === 0 || frameEnds.includes(cut));
          }
        },
      ),
    );
  });

  it('finds the end of the frame in flight from every byte offset of a stream', () => {
    const mask = Buffer.from([1, 2, 3, 4]);
    const parts = [
      text('a', { fin: false }),
      frame({ opcode: 0x0, payload: Buffer.alloc(130, 3), mask }),
      frame({ opcode: 0x2, payload: Buffer.alloc(5), lengthForm: 64 }),
      closeFrame(4001, '{"error":"session_superseded"}'),
    ];
    const stream = Buffer.concat(parts);
    const frameEnds = ends(parts);
    for (let offset = 0; offset <= stream.length; offset++) {
      const frames = new FrameBoundary();
      frames.feed(stream.subarray(0, offset));
      const next = frameEnds.find((e) => e > offset);
      const expected = frameEnds.includes(offset) || offset === 0 ? 0 : (next as number) - offset;
      expect(frames.bytesToBoundary(stream.subarray(offset)), `offset ${offset}`).toBe(expected);
    }
  });
});
