/**
 * A subscriber of the bench's own on a gateway's invalidation channel (`<prefix>invalidate`): counts
 * the messages and notes when each token id first arrived, so a bench can tell how many messages a
 * mass revocation put on the channel and when the last of its tokens was announced.
 */
import { Redis } from 'ioredis';

export interface ChannelCounter {
  /** Messages received since the start (or the last `reset`). */
  messages(): number;
  /** performance.now() at which each token id first arrived. */
  readonly arrivals: Map<string, number>;
  /** Token ids per message, as received. */
  readonly sizes: number[];
  /**
   * ms from each message's `at` (the publisher's clock when its first commit was sent) to its arrival
   * here: how long a revocation waited for the channel, batching included.
   */
  readonly lags: number[];
  reset(): void;
  stop(): void;
}

export async function countChannel(port: number, channel = 'sg:invalidate'): Promise<ChannelCounter> {
  const sub = new Redis({ host: '127.0.0.1', port });
  const arrivals = new Map<string, number>();
  const sizes: number[] = [];
  const lags: number[] = [];
  let count = 0;
  sub.on('message', (_channel: string, message: string) => {
    const at = performance.now();
    count++;
    const parsed = JSON.parse(message) as { tokenIds?: unknown; at?: unknown };
    const ids = Array.isArray(parsed.tokenIds) ? parsed.tokenIds : [];
    sizes.push(ids.length);
    if (typeof parsed.at === 'number') lags.push(performance.timeOrigin + at - parsed.at);
    for (const id of ids) if (typeof id === 'string' && !arrivals.has(id)) arrivals.set(id, at);
  });
  await sub.subscribe(channel);
  return {
    messages: () => count,
    arrivals,
    sizes,
    lags,
    reset: () => {
      count = 0;
      arrivals.clear();
      sizes.length = 0;
      lags.length = 0;
    },
    stop: () => sub.disconnect(),
  };
}
