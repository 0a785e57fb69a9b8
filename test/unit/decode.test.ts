/**
 * Body decoding for reading a login response (proxy/decode.ts): the encodings apps send, corrupt
 * bodies, and the output cap that keeps a compression bomb from exhausting memory.
 */
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../src/proxy/decode.js';

const json = Buffer.from(JSON.stringify({ accessToken: 'tok-123', user: { id: 'ana' } }));
const CAP = 1 << 20;

describe('decoding a login body', () => {
  it('returns an identity body as it is, with or without the header', async () => {
    expect(await decodeBody(json, undefined, CAP)).toBe(json);
    expect(await decodeBody(json, 'identity', CAP)).toBe(json);
    expect(await decodeBody(json, '', CAP)).toBe(json);
  });

  it('decodes gzip and its x-gzip alias', async () => {
    expect(await decodeBody(gzipSync(json), 'gzip', CAP)).toEqual(json);
    expect(await decodeBody(gzipSync(json), 'x-gzip', CAP)).toEqual(json);
  });

  it('decodes brotli', async () => {
    expect(await decodeBody(brotliCompressSync(json), 'br', CAP)).toEqual(json);
  });

  it('decodes deflate, zlib-wrapped as the RFC says and raw as some servers send it', async () => {
    expect(await decodeBody(deflateSync(json), 'deflate', CAP)).toEqual(json);
    expect(await decodeBody(deflateRawSync(json), 'deflate', CAP)).toEqual(json);
  });

  it('reads the encoding name case-insensitively and trimmed', async () => {
    expect(await decodeBody(gzipSync(json), ' GZip ', CAP)).toEqual(json);
    expect(await decodeBody(brotliCompressSync(json), 'BR', CAP)).toEqual(json);
  });

  it('does not decode stacked encodings (gzip then br): unreadable, not misread', async () => {
    const stacked = brotliCompressSync(gzipSync(json));
    expect(await decodeBody(stacked, 'gzip, br', CAP)).toBeUndefined();
  });

  it('does not decode an encoding it does not know', async () => {
    expect(await decodeBody(json, 'zstd', CAP)).toBeUndefined();
    expect(await decodeBody(json, 'compress', CAP)).toBeUndefined();
  });

  it('gives undefined for a corrupt body of each encoding', async () => {
    const garbage = Buffer.from('definitely not compressed data');
    for (const encoding of ['gzip', 'br', 'deflate'])
      expect(await decodeBody(garbage, encoding, CAP), encoding).toBeUndefined();
  });

  it('gives undefined for a truncated gzip body', async () => {
    const whole = gzipSync(json);
    expect(await decodeBody(whole.subarray(0, whole.length - 6), 'gzip', CAP)).toBeUndefined();
  });

  it('refuses output past the cap (a compression bomb), for each encoding', async () => {
    const bomb = Buffer.alloc(4 << 20, 0x20);
    const cap = 64 * 1024;
    const encoded: Record<string, Buffer> = {
      gzip: gzipSync(bomb),
      br: brotliCompressSync(bomb),
      deflate: deflateSync(bomb),
    };
    for (const [encoding, body] of Object.entries(encoded)) {
      expect(body.length, encoding).toBeLessThan(cap);
      expect(await decodeBody(body, encoding, cap), encoding).toBeUndefined();
    }
  });

  it('decodes a body exactly at the cap', async () => {
    const body = Buffer.alloc(4096, 0x61);
    expect(await decodeBody(gzipSync(body), 'gzip', body.length)).toEqual(body);
  });
});
