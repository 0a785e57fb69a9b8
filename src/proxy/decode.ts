import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate, inflateRaw, type ZlibOptions } from 'node:zlib';

const gunzipAsync = promisify<Buffer, ZlibOptions, Buffer>(gunzip);
const inflateAsync = promisify<Buffer, ZlibOptions, Buffer>(inflate);
const inflateRawAsync = promisify<Buffer, ZlibOptions, Buffer>(inflateRaw);
const brotliAsync = promisify<Buffer, ZlibOptions, Buffer>(brotliDecompress);

/**
 * Decodes a buffered login body for reading (the client still gets the bytes the app sent).
 * Output is capped so a compression bomb cannot exhaust memory; undefined when it cannot be decoded.
 */
export async function decodeBody(
  body: Buffer,
  contentEncoding: string | undefined,
  maxOutput: number,
): Promise<Buffer | undefined> {
  const encoding = contentEncoding?.trim().toLowerCase();
  if (!encoding || encoding === 'identity') return body;
  const options = { maxOutputLength: maxOutput };
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return await gunzipAsync(body, options);
    if (encoding === 'br') return await brotliAsync(body, options);
    if (encoding === 'deflate') {
      // "deflate" is zlib-wrapped by the RFC, raw in some servers' practice.
      try {
        return await inflateAsync(body, options);
      } catch {
        return await inflateRawAsync(body, options);
      }
    }
  } catch {
    return undefined;
  }
  return undefined;
}
