/**
 * The Redis store's command connection: built per topology (standalone, Sentinel, Cluster), with the
 * options of the request path, the scripts defined on it, and its readiness (available, answering).
 */
import { Cluster, Redis } from 'ioredis';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import { ConfigError, SessiongateError, StoreUnavailableError } from '../errors.js';
import type { LuaScript } from './redis-scripts.js';

export interface RedisConnectionOptions {
  /** `redis://` or `rediss://` URL. Ignored when `sentinels` or `cluster` is set. */
  readonly url?: string;
  /** Sentinel addresses (`host:port`), with `sentinelName`. */
  readonly sentinels?: readonly string[];
  /** The Sentinel master name. @default mymaster */
  readonly sentinelName?: string;
  /** Cluster seed nodes (`host:port`). */
  readonly cluster?: readonly string[];
  readonly password?: string;
  /** Milliseconds a request-path command may take before it fails. @default 250 */
  readonly commandTimeout?: number;
  /** Milliseconds between subscriber PINGs; an unanswered PING counts as a disconnect. @default 1000 */
  readonly pingInterval?: number;
  /** Connection-level problems (command failures are thrown to the caller instead). */
  readonly onError?: (err: unknown, what: string) => void;
  /** The command connection became usable (true) or not (false). */
  readonly onStateChange?: (available: boolean) => void;
}

export type Client = Redis | Cluster;

/** Longest wait between reconnect attempts (command and subscriber connections). */
const MAX_BACKOFF = 2_000;
/** Consecutive command timeouts after which the command connection is presumed half-open. */
const TIMEOUTS_BEFORE_RECONNECT = 3;

export function backoff(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 10), MAX_BACKOFF);
}

/** `host:port` or `[v6]:port`. */
function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address.trim());
  if (!m || !m[1])
    throw new ConfigError([{ path: 'store', message: `expected host:port, got "${address}"` }]);
  return { host: m[1], port: Number(m[2]) };
}

/** A command that `defineCommand` added to the client: the number of keys, the keys, the arguments. */
type ScriptCommand = (this: Client, numberOfKeys: number, ...keysAndArgs: string[]) => Promise<unknown>;

function isScriptCommand(value: unknown): value is ScriptCommand {
  return typeof value === 'function';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The request-path connection. It never queues (`enableOfflineQueue: false`), times out every command
 * and never resends one after a disconnect, so an unreachable Redis is a fast StoreUnavailableError. It
 * reconnects forever with capped backoff. `connectSubscriber` opens a subscriber connection to the same
 * deployment (see redis-subscriber.ts).
 */
export class CommandConnection {
  readonly client: Client;
  /** A Cluster: keys of different slots may live on different nodes. */
  readonly cluster: boolean;
  readonly connectSubscriber: () => Redis;
  readonly #onError: (err: unknown, what: string) => void;
  readonly #onStateChange: (available: boolean) => void;
  readonly #pingInterval: number;
  #available = false;
  #closed = false;
  #timeouts = 0;
  /** Set by a command timeout, cleared by the next success: the connection is up but not answering. */
  #commandFailure: string | undefined;
  /** PINGs the command connection while `#commandFailure` is set (see `#armProbe`). */
  #probeTimer: NodeJS.Timeout | undefined;

  constructor(options: RedisConnectionOptions, scripts: readonly LuaScript[]) {
    this.#onError = options.onError ?? (() => {});
    this.#onStateChange = options.onStateChange ?? (() => {});
    const commandTimeout = options.commandTimeout ?? 250;
    const pingInterval = options.pingInterval ?? 1_000;
    this.#pingInterval = pingInterval;
    this.cluster = options.cluster !== undefined && options.cluster.length > 0;

    const requestPath: RedisOptions = {
      ...(options.password !== undefined ? { password: options.password } : {}),
      enableOfflineQueue: false,
      commandTimeout,
      // A command in flight when the connection drops fails at once and is never resent: a resent
      // commit could apply twice (the compare-and-set would reject it, but as a spurious conflict).
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: Math.max(1_000, 4 * commandTimeout),
      retryStrategy: (attempt: number) => backoff(attempt),
      // After a Sentinel failover the old master answers writes with READONLY: reconnect to the new one.
      reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
      // ioredis's 2 s disconnect timer is cleared only by a socket close that a refused connection
      // already had: close() must not keep the process alive that long.
      disconnectTimeout: 0,
    };
    const subscriberBase: RedisOptions = {
      ...(options.password !== undefined ? { password: options.password } : {}),
      disconnectTimeout: 0,
      lazyConnect: true,
      // The subscriber manages its own reconnects, resubscription and liveness (see InvalidationSubscriber).
      retryStrategy: () => null,
      autoResubscribe: false,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      connectTimeout: Math.max(1_000, pingInterval),
    };

    if (options.cluster && options.cluster.length > 0) {
      const seeds = options.cluster.map(parseAddress);
      const { reconnectOnError: _r, retryStrategy: _s, ...nodeOptions } = requestPath;
      const clusterOptions: ClusterOptions = {
        enableOfflineQueue: false,
        scaleReads: 'master',
        clusterRetryStrategy: (attempt: number) => backoff(attempt),
        redisOptions: nodeOptions,
      };
      const cluster = new Cluster(seeds, clusterOptions);
      this.client = cluster;
      // Classic PUBLISH reaches every node of a Cluster, so one plain connection to any master is
      // enough; each new attempt takes the next known master, so a dead node is not retried forever.
      let next = 0;
      this.connectSubscriber = () => {
        const known = cluster.nodes('master').map((n) => ({ host: n.options.host, port: n.options.port }));
        const candidates = known.length > 0 ? known : seeds;
        const target = candidates[next++ % candidates.length] ?? seeds[0];
        return new Redis({ ...subscriberBase, ...target });
      };
    } else if (options.sentinels && options.sentinels.length > 0) {
      const sentinel: RedisOptions = {
        sentinels: options.sentinels.map(parseAddress),
        name: options.sentinelName ?? 'mymaster',
        role: 'master',
      };
      // failoverDetector: reconnect as soon as a Sentinel announces +switch-master.
      this.client = new Redis({ ...requestPath, ...sentinel, failoverDetector: true });
      this.connectSubscriber = () => new Redis({ ...subscriberBase, ...sentinel });
    } else if (options.url) {
      const url = options.url;
      this.client = new Redis(url, requestPath);
      this.connectSubscriber = () => new Redis(url, subscriberBase);
    } else {
      throw new ConfigError([{ path: 'store', message: 'expected url, sentinels or cluster' }]);
    }
    // ioredis keeps track, per connection (so per Cluster node), of which scripts it has sent: EVAL the
    // first time and after a NOSCRIPT (SCRIPT FLUSH, a failover to a fresh replica), EVALSHA otherwise.
    // No numberOfKeys: `run` passes it first, as a script may take a varying number of keys.
    for (const script of scripts) this.client.defineCommand(script.name, { lua: script.source });

    this.client.on('error', (err: unknown) => this.#onError(err, 'connection'));
    this.client.on('ready', () => {
      // A fresh connection answered its ready check: whatever timed out before is behind us.
      this.#commandFailure = undefined;
      this.#setAvailable(true);
    });
    for (const event of ['close', 'end', 'reconnecting'])
      this.client.on(event, () => this.#setAvailable(false));
  }

  /** True while connected and not closed. */
  isAvailable(): boolean {
    return this.#available && !this.#closed;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Why commands are not answered (a timeout since the last success), or undefined. */
  get commandFailure(): string | undefined {
    return this.#commandFailure;
  }

  /**
   * Runs a script defined on the client. ioredis's types know only its built-in commands, so this is
   * the one place that looks a defined command up by name.
   */
  run(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const command: unknown = Reflect.get(this.client, script.name);
    if (!isScriptCommand(command)) throw new Error(`script ${script.name} is not defined on the client`);
    return command.call(this.client, keys.length, ...keys, ...args);
  }

  /** Runs one store operation; every Redis failure becomes a StoreUnavailableError with the cause. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError('redis store is closed');
    try {
      const result = await fn();
      this.#timeouts = 0;
      this.#commandFailure = undefined;
      return result;
    } catch (err) {
      if (err instanceof SessiongateError) throw err;
      if (messageOf(err) === 'Command timed out') {
        this.#commandFailure = `${what} timed out`;
        this.#armProbe();
        this.#noteTimeout();
      }
      throw new StoreUnavailableError(`redis ${what} failed: ${messageOf(err)}`, { cause: err });
    }
  }

  /** Quits the connection (in-flight replies arrive first); later calls fail. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#probeTimer);
    try {
      // QUIT lets in-flight replies arrive; it is a command, so commandTimeout bounds it.
      if (this.client.status === 'ready') await this.client.quit();
    } catch {
      // Already gone or not answering; disconnect below stops any reconnect timer.
    }
    this.client.disconnect();
    this.#setAvailable(false);
  }

  /**
   * A connection that stops answering without closing (half-open TCP, a frozen peer) is never noticed
   * by ioredis: commands just time out, forever. Several timeouts in a row with no success between
   * them force a reconnect. (A Cluster client is left to its own topology refresh.)
   */
  #noteTimeout(): void {
    if (++this.#timeouts < TIMEOUTS_BEFORE_RECONNECT || !(this.client instanceof Redis)) return;
    this.#timeouts = 0;
    this.#onError(new Error('repeated command timeouts; reconnecting'), 'connection');
    this.client.disconnect(true);
  }

  /**
   * While commands are failing, PINGs the command connection every pingInterval until one is answered:
   * a gateway that readiness took out of rotation gets no requests, so without this nothing would
   * ever find out that Redis is back (and a half-open connection would never reach the reconnect).
   */
  #armProbe(): void {
    if (this.#probeTimer !== undefined || this.#closed) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      if (this.#commandFailure === undefined || this.#closed) return;
      // Not connected: the 'ready' of the reconnect clears the failure; until then keep waiting.
      if (!this.#available) return this.#armProbe();
      this.call('probe', () => this.client.ping()).then(
        () => {},
        () => this.#armProbe(),
      );
    }, this.#pingInterval);
    this.#probeTimer.unref();
  }

  #setAvailable(available: boolean): void {
    if (this.#closed && available) return;
    if (available === this.#available) return;
    this.#available = available;
    this.#onStateChange(available);
  }
}
