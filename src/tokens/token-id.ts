import { createHash, createHmac, hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/** Turns a raw token into its token id: HMAC-SHA256 under the configured secret, base64url. */
export type TokenIdOf = (token: string) => string;

export interface TokenIdOptions {
  /**
   * Raw token -> token id pairs remembered (LRU), so a token presented again skips the HMAC. The raw
   * tokens then stay in this process's memory (never in logs, the store, messages or metrics), as in
   * Envoy's JWT cache. 0: every request pays the HMAC and no raw token outlives its request.
   * @default 0
   */
  readonly memo?: number;
}

const BLOCK = 64;
/** Longer tokens (large JWTs) are hashed each time, so the memo's memory stays bounded. */
export const MAX_MEMO_TOKEN_LENGTH = 2048;
/** Bytes of token the preallocated inner buffer takes; longer ones are concatenated per call. */
const SCRATCH_TOKEN_BYTES = 4096;

/**
 * Raw tokens never leave the process: stores, caches, logs and events only see token ids. A keyed hash
 * (not a plain one) so a leaked store cannot be matched against guessed or leaked tokens.
 *
 * HMAC (RFC 2104) over precomputed pads with one-shot `crypto.hash` calls into reused buffers:
 * `createHmac` creates a native object with a weak reference per call (15-25 us per request under
 * load here), and `Buffer.concat` per call cost twice what this does. Measured under callgrind, the
 * HMAC was the largest part of the gateway's cost over a bare proxy (~25k instructions a request),
 * which the memo removes for tokens seen before.
 */
export function createTokenIdOf(secret: string, options: TokenIdOptions = {}): TokenIdOf {
  let key = Buffer.from(secret, 'utf8');
  if (key.length > BLOCK) key = createHash('sha256').update(key).digest();
  const inner = Buffer.alloc(BLOCK + SCRATCH_TOKEN_BYTES, 0x36);
  const outer = Buffer.alloc(BLOCK + 32, 0x5c);
  for (let i = 0; i < key.length; i++) {
    inner[i] = (inner[i] as number) ^ (key[i] as number);
    outer[i] = (outer[i] as number) ^ (key[i] as number);
  }
  let compute: TokenIdOf;
  if (typeof hash !== 'function') {
    // Node before 20.12: no one-shot hash.
    compute = (token) => createHmac('sha256', key).update(token).digest('base64url');
  } else {
    const ipad = inner.subarray(0, BLOCK);
    // Synchronous, so the shared buffers are never used by two calls at once.
    compute = (token) => {
      // A UTF-16 code unit is at most 3 UTF-8 bytes: within the scratch area, nothing is cut off.
      const innerDigest =
        token.length * 3 <= SCRATCH_TOKEN_BYTES
          ? hash('sha256', inner.subarray(0, BLOCK + inner.write(token, BLOCK, 'utf8')), 'hex')
          : hash('sha256', Buffer.concat([ipad, Buffer.from(token, 'utf8')]), 'hex');
      outer.write(innerDigest, BLOCK, 'hex');
      return hash('sha256', outer, 'base64url');
    };
  }
  const entries = options.memo ?? 0;
  if (entries <= 0) return compute;
  const memo = new LRUCache<string, string>({ max: entries });
  return (token) => {
    let id = memo.get(token);
    if (id === undefined) {
      id = compute(token);
      if (token.length <= MAX_MEMO_TOKEN_LENGTH) memo.set(token, id);
    }
    return id;
  };
}
