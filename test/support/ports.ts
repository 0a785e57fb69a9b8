/**
 * The one free-port helper, for what must be told its port before it starts (a redis-server, a child
 * process). Servers of this process listen on port 0 and read the port instead.
 */
import { once } from 'node:events';
import net from 'node:net';

const HOST = '127.0.0.1';
/** Redis's default ports: a test never takes them (a developer's own redis-server may be there). */
const FORBIDDEN_PORTS = new Set([6379, 16379, 26379]);

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close); another process may still take it. */
export async function freePort(): Promise<number> {
  for (;;) {
    const server = net.createServer();
    server.unref();
    server.listen(0, HOST);
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    server.close();
    await once(server, 'close');
    if (!FORBIDDEN_PORTS.has(port)) return port;
  }
}
