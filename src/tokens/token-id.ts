import { createHash, createHmac, hash } from 'node:crypto';

/** Turns a raw token into its token id: HMAC-SHA256 under the configured secret, base64url. */
export type TokenIdOf = (token: string) => string;

const BLOCK = 64;

/**
 * Raw tokens never leave the request: stores, caches, logs and events only see token ids. A keyed hash
 * (not a plain one) so a leaked store cannot be matched against guessed or leaked tokens.
 *
 * HMAC (RFC 2104) is computed with two one-shot `crypto.hash` calls over precomputed pads: under load,
 * `createHmac` cost 15-25 us per request here (each call creates a native object with a weak
 * reference the GC must process), against about 3 us for this. Token ids are not memoised by raw token,
 * so no raw token outlives its request.
 */
export function createTokenIdOf(secret: string): TokenIdOf {
  let key = Buffer.from(secret, 'utf8');
  if (key.length > BLOCK) key = createHash('sha256').update(key).digest();
  const ipad = Buffer.alloc(BLOCK, 0x36);
  const opad = Buffer.alloc(BLOCK, 0x5c);
  for (let i = 0; i < key.length; i++) {
    ipad[i] = (ipad[i] as number) ^ (key[i] as number);
    opad[i] = (opad[i] as number) ^ (key[i] as number);
  }
  if (typeof hash !== 'function') {
    // Node before 20.12: no one-shot hash.
    return (token) => createHmac('sha256', key).update(token).digest('base64url');
  }
  return (token) => {
    const inner = hash(
      'sha256',
      Buffer.concat([ipad, Buffer.from(token, 'utf8')]),
      'buffer',
    ) as unknown as Buffer;
    return hash('sha256', Buffer.concat([opad, inner]), 'base64url');
  };
}
