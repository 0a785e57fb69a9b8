import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';

/** Turns a raw token into its token id: HMAC-SHA256 under the configured secret, base64url. */
export type TokenIdOf = (token: string) => string;

/**
 * Raw tokens never leave the request: stores, caches, logs and events only see token ids. A keyed hash
 * (not a plain one) so a leaked store cannot be matched against guessed or leaked tokens.
 */
export function createTokenIdOf(secret: string): TokenIdOf {
  const key: KeyObject = createSecretKey(Buffer.from(secret, 'utf8'));
  return (token) => createHmac('sha256', key).update(token).digest('base64url');
}
