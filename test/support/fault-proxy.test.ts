/**
 * The fault proxy itself, in front of a real TCP echo server: each fault does what it says, and healing
 * brings the bytes back.
 */
import { once } from 'node:events';
import net from 'node:net';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';

/** What the echo server received, per connection, in order of connection. */
const received: string[] = [];
let echoPort: number;

beforeAll(async () => {
  const server = net.createServer((socket) => {
    const index = received.push('') - 1;
    socket.on('data', (d) => {
      received[index] += d.toString();
      socket.write(d);
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  echoPort = (server.address() as net.AddressInfo).port;
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
});

async function proxy(): Promise<FaultProxy> {
  const p = await startFaultProxy(echoPort);
  onTestFinished(() => p.close());
  return p;
}

/** A client socket that collects what comes back. */
async function client(
  p: FaultProxy,
): Promise<{ socket: net.Socket; text: () => string; until: (s: string) => Promise<void> }> {
  const socket = net.connect(p.port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'connect');
  let text = '';
  const waiters: (() => void)[] = [];
  socket.on('data', (d) => {
    text += d.toString();
    for (const w of waiters.splice(0)) w();
  });
  const until = async (s: string): Promise<void> => {
    while (!text.includes(s)) await new Promise<void>((r) => waiters.push(r));
  };
  return { socket, text: () => text, until };
}

describe('the fault proxy', () => {
  it('passes bytes both ways while no fault is on', async () => {
    const p = await proxy();
    const c = await client(p);
    c.socket.write('hello');
    await c.until('hello');
    expect(c.text()).toBe('hello');
    expect(p.accepted).toBe(1);
  });

  it('holds stalled bytes without closing anything, and delivers them in order once healed', async () => {
    const p = await proxy();
    const c = await client(p);
    const conn = await p.connection();
    p.stall('down');
    c.socket.write('one,');
    c.socket.write('two');
    // The server answered (the echo is held by the proxy), the client got nothing and is still connected.
    await conn.untilHeld('down');
    await p.connection((x) => x.sent().includes('one,two'));
    expect(c.text()).toBe('');
    expect(c.socket.destroyed).toBe(false);
    p.heal();
    await c.until('one,two');
    expect(c.text()).toBe('one,two');
  });

  it('keeps the order of delayed chunks when the latency changes', async () => {
    const p = await proxy();
    const c = await client(p);
    p.latency(300, 'up');
    c.socket.write('slow,');
    await (await p.connection()).untilHeld('up');
    p.latency(0, 'up');
    c.socket.write('fast');
    await c.until('fast');
    expect(c.text()).toBe('slow,fast');
  });

  it('drops the bytes of a half-open connection and keeps it looking alive; other connections flow', async () => {
    const p = await proxy();
    const dead = await client(p);
    const deadConn = await p.connection();
    deadConn.halfOpen();
    dead.socket.write('lost');
    const alive = await client(p);
    alive.socket.write('later');
    await alive.until('later');
    expect(received.some((r) => r.includes('lost'))).toBe(false);
    expect(dead.text()).toBe('');
    expect(dead.socket.destroyed).toBe(false);
  });

  it('resets open and new connections until healed', async () => {
    const p = await proxy();
    const c = await client(p);
    // Not events.once: it rejects on the 'error' that comes first.
    const closed = new Promise((resolve) => c.socket.once('close', resolve));
    const error = once(c.socket, 'error') as Promise<[NodeJS.ErrnoException]>;
    p.reset();
    expect((await error)[0].code).toBe('ECONNRESET');
    await closed;
    const refused = net.connect(p.port, '127.0.0.1');
    refused.on('error', () => {});
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
    p.heal();
    const again = await client(p);
    again.socket.write('back');
    await again.until('back');
    expect(again.text()).toBe('back');
  });

  it('shows each chunk to onData before forwarding it, so a fault can start at an exact point', async () => {
    const p = await proxy();
    const c = await client(p);
    p.onData((chunk, direction, conn) => {
      if (direction === 'up' && chunk.toString().includes('STOP')) conn.stall('down');
    });
    c.socket.write('go');
    await c.until('go');
    c.socket.write('STOP');
    const conn = await p.connection();
    await conn.untilHeld('down');
    expect(c.text()).toBe('go');
    conn.heal();
    await c.until('STOP');
    expect(c.text()).toBe('goSTOP');
  });
});
