/**
 * `sessiongate check --connect`: can this gateway reach its upstream and its store, as configured?
 * Each check waits at most `timeouts.connect` and reports one line. The store is opened with the
 * store's own code (`createStore`), so the answer covers what the gateway would do: the same
 * connection options, password, Sentinel or Cluster discovery and readiness rule (`health()`).
 */
import net from 'node:net';
import { Client } from 'undici';
import type { Config } from '../config/schema.js';
import { createStore } from '../store/index.js';
import type { SessionStore } from '../store/index.js';
import { formatDuration, storeName } from './explain.js';

export interface CheckResult {
  readonly ok: boolean;
  readonly line: string;
}

const message = (err: unknown): string => {
  if (err instanceof AggregateError && err.errors.length > 0) return message(err.errors[0]);
  return err instanceof Error ? err.message || err.name : String(err);
};

/** A TCP connection to host:port, closed at once; the error message, or undefined when it opened. */
function tcpConnect(host: string, port: number, timeout: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(`timed out after ${formatDuration(timeout)}`), timeout);
    socket.once('connect', () => done(undefined));
    socket.once('error', (err) => done(message(err)));
  });
}

/**
 * TCP first (so a refused or unroutable port says so plainly), then `HEAD /` through undici, the
 * gateway's own HTTP client (same TLS checks); `GET /` when the app does not do HEAD. Any HTTP answer
 * means the upstream is reachable: what `/` answers is the app's business.
 */
export async function checkUpstream(config: Config): Promise<CheckResult> {
  const origin = new URL(config.upstream);
  const name = `upstream ${config.upstream}`;
  const timeout = config.timeouts.connect;
  const host = origin.hostname.replace(/^\[|\]$/g, '');
  const port = Number(origin.port || (origin.protocol === 'https:' ? 443 : 80));
  const tcp = await tcpConnect(host, port, timeout);
  if (tcp !== undefined) return { ok: false, line: `${name}: TCP connect failed: ${tcp}` };
  const client = new Client(config.upstream, {
    connect: { timeout },
    headersTimeout: timeout,
    bodyTimeout: timeout,
  });
  try {
    let method: 'HEAD' | 'GET' = 'HEAD';
    let res = await client.request({ path: '/', method });
    await res.body.dump();
    if (res.statusCode === 405 || res.statusCode === 501) {
      method = 'GET';
      res = await client.request({ path: '/', method });
      await res.body.dump();
    }
    return { ok: true, line: `${name}: ok (${method} / answered ${res.statusCode})` };
  } catch (err) {
    return { ok: false, line: `${name}: HTTP request failed: ${message(err)}` };
  } finally {
    await client.destroy();
  }
}

/** Ready as `/readyz` counts it: commands answered, and the invalidation channel unless `strict`. */
function ready(store: SessionStore, consistency: Config['consistency']): boolean {
  const h = store.health();
  return h.commands && (h.channel || consistency === 'strict');
}

/**
 * Opens the store, waits (on its state-change hooks, at most `timeouts.connect`) for commands and the
 * invalidation channel, runs one real command (`countLive`, a script: it also proves EVALSHA is
 * allowed), and closes it.
 */
export async function checkStore(config: Config): Promise<CheckResult> {
  const name = `store ${storeName(config.store)}`;
  if (config.store === 'memory') return { ok: true, line: `${name}: ok (in this process)` };
  const timeout = config.timeouts.connect;
  let lastError: string | undefined;
  let changed = () => {};
  const store = await createStore(config.store, {
    onError: (err) => (lastError = message(err)),
    onAvailability: () => changed(),
    onChannel: () => changed(),
  });
  try {
    const settled = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeout);
      changed = () => {
        const h = store.health();
        if (h.commands && h.channel) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      changed();
    });
    if (!settled && !ready(store, config.consistency)) {
      const h = store.health();
      const why = [h.reason ?? 'not ready', lastError].filter((s) => s !== undefined).join(': ');
      return { ok: false, line: `${name}: not ready after ${formatDuration(timeout)}: ${why}` };
    }
    const live = await store.countLive();
    const channel = store.health().channel
      ? 'invalidation channel subscribed'
      : 'invalidation channel down (not needed with consistency: strict)';
    return { ok: true, line: `${name}: ok (commands answered, ${channel}, ${live} live sessions)` };
  } catch (err) {
    return { ok: false, line: `${name}: ${message(err)}` };
  } finally {
    changed = () => {};
    await store.close();
  }
}

/** Both checks at once (a dead upstream does not delay the store's answer); upstream line first. */
export async function checkConnections(config: Config): Promise<CheckResult[]> {
  return Promise.all([checkUpstream(config), checkStore(config)]);
}
