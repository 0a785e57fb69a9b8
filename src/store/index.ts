import type { Config } from '../config/schema.js';
import type { SessionStore } from './contract.js';
import { MemorySessionStore } from './memory.js';
import { createRedisStore } from './redis.js';

export type { SessionStore } from './contract.js';

export interface StoreHooks {
  readonly now?: () => number;
  /** Milliseconds a session stays readable after its expiresAt (the "expired" message outlives it). */
  readonly retention?: number;
  /** Milliseconds the token ids of a session stay dead after its expiresAt, once its record is gone. */
  readonly tombstoneRetention?: number;
  readonly onError?: (err: unknown, what: string) => void;
  readonly onAvailability?: (available: boolean) => void;
  readonly onChannel?: (state: 'lost' | 'restored') => void;
  /** One invalidation received; `lagMs` from its publication when known. */
  readonly onInvalidation?: (lagMs: number | undefined) => void;
}

/** Builds the configured store. */
export async function createStore(config: Config['store'], hooks: StoreHooks = {}): Promise<SessionStore> {
  if (config === 'memory') {
    return new MemorySessionStore({
      ...(hooks.now ? { now: hooks.now } : {}),
      retention: hooks.retention ?? 0,
      tombstoneRetention: hooks.tombstoneRetention ?? 0,
    });
  }
  const redis = typeof config === 'string' ? { url: config } : config;
  // Not waiting for the first connection: a gateway must start (and apply failMode) while Redis is down.
  return createRedisStore({
    ...redis,
    ...(hooks.now ? { now: hooks.now } : {}),
    retention: hooks.retention ?? 0,
    tombstoneRetention: hooks.tombstoneRetention ?? 0,
    ...(hooks.onError ? { onError: hooks.onError } : {}),
    ...(hooks.onAvailability ? { onStateChange: hooks.onAvailability } : {}),
    ...(hooks.onChannel ? { onChannel: hooks.onChannel } : {}),
    ...(hooks.onInvalidation ? { onInvalidation: hooks.onInvalidation } : {}),
  });
}
