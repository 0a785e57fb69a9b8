/**
 * A fault-injecting TCP proxy for tests: a real node:net proxy between a client (the gateway) and a
 * local server (a real redis-server), whose faults are switched at run time, per direction:
 *
 *   const proxy = await startFaultProxy(redis.port);          // proxy.url: redis://127.0.0.1:<port>
 *   proxy.stall();                 // bytes are held, nothing is closed (a paused Redis); heal() delivers them
 *   proxy.latency(50, 'down');     // every reply is delayed 50 ms, in order
 *   proxy.halfOpen();              // bytes vanish, closes are not passed on (a dead TCP path that looks alive)
 *   proxy.reset();                 // every connection is reset (RST), and new ones too until heal()
 *   proxy.heal();                  // pass-through again (connections that went half-open stay dead)
 *
 * Directions: `up` is client -> server, `down` is server -> client, `both` the two. Every fault applies
 * to the open connections and to those accepted while it is on; each connection can also be faulted on
 * its own (`proxy.connections()`, e.g. the one that sent SUBSCRIBE). `onData` sees each chunk before it
 * is forwarded, so a test can switch a fault at an exact point of a conversation. Cleanup: the caller
 * registers `close()`.
 */
import { EventEmitter, once } from 'node:events';
import net from 'node:net';

const HOST = '127.0.0.1';
/** Bytes of each direction a connection remembers for `sent` / `received` (enough to tell who it is). */
const SNIFF_BYTES = 64 * 1024;

export type Direction = 'up' | 'down' | 'both';
type One = 'up' | 'down';

const sidesOf = (d: Direction): One[] => (d === 'both' ? ['up', 'down'] : [d]);

interface Chunk {
  readonly data: Buffer;
  readonly due: number;
}

/** One direction of one connection: a queue that latency delays, a stall holds and half-open empties. */
class Pipe {
  latency = 0;
  stalled = false;
  /** Half-open: bytes are dropped for good (a real dead path does not come back). */
  dead = false;
  /** Bytes that passed through (up to SNIFF_BYTES), for `sent` / `received`. */
  seen = Buffer.alloc(0);
  readonly #queue: Chunk[] = [];
  readonly #dest: net.Socket;
  readonly #onHeld: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(dest: net.Socket, onHeld: () => void) {
    this.#dest = dest;
    this.#onHeld = onHeld;
  }

  /** Bytes waiting in the proxy (stalled or delayed). */
  get held(): number {
    return this.#queue.reduce((n, c) => n + c.data.length, 0);
  }

  push(data: Buffer): void {
    if (this.dead) return;
    this.#queue.push({ data, due: Date.now() + this.latency });
    this.pump();
    if (this.#queue.length > 0) this.#onHeld();
  }

  /** Forwards what is due, in order; waits for the head of the queue otherwise. */
  pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.dead) this.#queue.length = 0;
    while (!this.stalled && this.#queue.length > 0) {
      const head = this.#queue[0] as Chunk;
      const wait = head.due - Date.now();
      if (wait > 0) {
        this.#timer = setTimeout(() => this.pump(), wait);
        return;
      }
      this.#queue.shift();
      if (this.seen.length < SNIFF_BYTES)
        this.seen = Buffer.concat([this.seen, head.data]).subarray(0, SNIFF_BYTES);
      if (!this.#dest.destroyed) this.#dest.write(head.data);
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#queue.length = 0;
  }
}

/** One proxied connection, faultable on its own. */
export interface FaultConnection {
  /** 1, 2, ... in the order the proxy accepted them. */
  readonly id: number;
  /** What the client sent so far (first 64 KiB), as latin1 text: `c.sent().includes('SUBSCRIBE')`. */
  sent(): string;
  /** What the server sent back so far (first 64 KiB), as latin1 text. */
  received(): string;
  /** Bytes held by a stall or a latency in this direction. */
  held(direction: One): number;
  /** Resolves once this direction holds bytes (stalled or delayed: a reply has reached the proxy, say). */
  untilHeld(direction: One): Promise<void>;
  latency(ms: number, direction?: Direction): void;
  stall(direction?: Direction): void;
  halfOpen(direction?: Direction): void;
  /** Resets both sockets (RST). */
  reset(): void;
  /** Pass-through again, held bytes delivered in order; a half-open direction stays dead. */
  heal(direction?: Direction): void;
  readonly closed: boolean;
}

export interface FaultProxy {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Delays every chunk by `ms` (order kept); 0 removes the latency. */
  latency(ms: number, direction?: Direction): void;
  /** Holds every byte, closing nothing, until `heal`. */
  stall(direction?: Direction): void;
  /** Drops every byte and passes no close on: the connections look alive and never answer again. */
  halfOpen(direction?: Direction): void;
  /** Resets every open connection, and every new one until `heal`. */
  reset(): void;
  /** Ends every fault for new bytes and new connections (held bytes are delivered). */
  heal(direction?: Direction): void;
  /** Open connections, oldest first. */
  connections(): FaultConnection[];
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Called with each chunk before it is forwarded (or held, or dropped). */
  onData(listener: (chunk: Buffer, direction: One, connection: FaultConnection) => void): () => void;
  /**
   * Resolves with an open connection that `match`es (default: any), now or as soon as one does; checked
   * again at every new connection and chunk, so `c => c.sent().includes('SUBSCRIBE')` works.
   */
  connection(match?: (c: FaultConnection) => boolean): Promise<FaultConnection>;
  close(): Promise<void>;
}

interface Defaults {
  latency: Record<One, number>;
  stalled: Record<One, boolean>;
  dead: Record<One, boolean>;
  reset: boolean;
}

class Connection implements FaultConnection {
  readonly id: number;
  readonly pipes: Record<One, Pipe>;
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  closed = false;
  readonly #onGone: () => void;
  readonly #held = new EventEmitter();

  constructor(id: number, client: net.Socket, upstream: net.Socket, onGone: () => void) {
    this.id = id;
    this.client = client;
    this.upstream = upstream;
    this.#onGone = onGone;
    this.pipes = {
      up: new Pipe(upstream, () => this.#held.emit('up')),
      down: new Pipe(client, () => this.#held.emit('down')),
    };
  }

  async untilHeld(direction: One): Promise<void> {
    if (this.pipes[direction].held === 0) await once(this.#held, direction);
  }

  sent(): string {
    return this.pipes.up.seen.toString('latin1');
  }
  received(): string {
    return this.pipes.down.seen.toString('latin1');
  }
  held(direction: One): number {
    return this.pipes[direction].held;
  }
  get halfOpenAnyWay(): boolean {
    return this.pipes.up.dead || this.pipes.down.dead;
  }
  latency(ms: number, direction: Direction = 'both'): void {
    for (const s of sidesOf(direction)) this.pipes[s].latency = ms;
  }
  stall(direction: Direction = 'both'): void {
    for (const s of sidesOf(direction)) this.pipes[s].stalled = true;
  }
  halfOpen(direction: Direction = 'both'): void {
    for (const s of sidesOf(direction)) {
      this.pipes[s].dead = true;
      this.pipes[s].pump();
    }
  }
  heal(direction: Direction = 'both'): void {
    for (const s of sidesOf(direction)) {
      const p = this.pipes[s];
      p.latency = 0;
      p.stalled = false;
      p.pump();
    }
  }
  reset(): void {
    this.destroy(true);
  }
  destroy(rst = false): void {
    if (this.closed) return;
    this.closed = true;
    this.pipes.up.stop();
    this.pipes.down.stop();
    for (const s of [this.client, this.upstream]) {
      // resetAndDestroy needs a connected socket; one still connecting is simply destroyed.
      if (rst && !s.destroyed && !s.connecting) s.resetAndDestroy();
      else s.destroy();
    }
    this.#onGone();
  }
}

/** Starts a fault proxy on 127.0.0.1:0 in front of `targetPort` on 127.0.0.1, passing everything through. */
export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const defaults: Defaults = {
    latency: { up: 0, down: 0 },
    stalled: { up: false, down: false },
    dead: { up: false, down: false },
    reset: false,
  };
  const open = new Set<Connection>();
  const events = new EventEmitter();
  const dataListeners = new Set<(chunk: Buffer, direction: One, connection: FaultConnection) => void>();
  let accepted = 0;

  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, HOST);
    const conn = new Connection(++accepted, client, upstream, () => open.delete(conn));
    client.on('error', () => {});
    upstream.on('error', () => {});
    if (defaults.reset) {
      // Accepted, then reset at once: the client sees ECONNRESET, as from a server that drops it.
      client.resetAndDestroy();
      upstream.destroy();
      return;
    }
    open.add(conn);
    for (const s of ['up', 'down'] as const) {
      conn.pipes[s].latency = defaults.latency[s];
      conn.pipes[s].stalled = defaults.stalled[s];
      conn.pipes[s].dead = defaults.dead[s];
    }
    const relay = (direction: One) => (data: Buffer) => {
      for (const l of dataListeners) l(data, direction, conn);
      conn.pipes[direction].push(data);
      events.emit('change');
    };
    client.on('data', relay('up'));
    upstream.on('data', relay('down'));
    // A half-open path passes no close on either: the other side keeps waiting on a live-looking socket.
    const onClose = (socket: net.Socket) => () => {
      if (conn.halfOpenAnyWay) socket.destroy();
      else conn.destroy();
    };
    client.on('close', onClose(client));
    upstream.on('close', onClose(upstream));
    events.emit('change');
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;

  const every = (fn: (c: Connection) => void) => {
    for (const c of open) fn(c);
  };

  return {
    port,
    url: `redis://${HOST}:${port}`,
    get accepted() {
      return accepted;
    },
    latency(ms, direction = 'both') {
      for (const s of sidesOf(direction)) defaults.latency[s] = ms;
      every((c) => c.latency(ms, direction));
    },
    stall(direction = 'both') {
      for (const s of sidesOf(direction)) defaults.stalled[s] = true;
      every((c) => c.stall(direction));
    },
    halfOpen(direction = 'both') {
      for (const s of sidesOf(direction)) defaults.dead[s] = true;
      every((c) => c.halfOpen(direction));
    },
    reset() {
      defaults.reset = true;
      every((c) => c.reset());
    },
    heal(direction = 'both') {
      for (const s of sidesOf(direction)) {
        defaults.latency[s] = 0;
        defaults.stalled[s] = false;
        defaults.dead[s] = false;
      }
      defaults.reset = false;
      every((c) => c.heal(direction));
    },
    connections: () => [...open],
    onData(listener) {
      dataListeners.add(listener);
      return () => dataListeners.delete(listener);
    },
    connection(match = () => true) {
      return new Promise((resolve) => {
        const check = () => {
          const found = [...open].find((c) => !c.closed && match(c));
          if (!found) return;
          events.off('change', check);
          resolve(found);
        };
        events.on('change', check);
        check();
      });
    },
    async close() {
      every((c) => c.destroy());
      open.clear();
      events.removeAllListeners();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
