/**
 * The response head exactly as a client receives it, read off a plain TCP socket (no fetch or undici
 * parsing in between), for the cookie hardening suites.
 */
import { connect } from 'node:net';

/** One request on a fresh socket; the response head as the client receives it. */
export async function raw(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body = '',
): Promise<{ status: number; setCookies: string[]; head: string }> {
  const { hostname, port } = new URL(base);
  const socket = connect(Number(port), hostname);
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== '') lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  socket.write(`${lines.join('\r\n')}\r\n\r\n${body}`);
  const chunks: Buffer[] = [];
  for await (const c of socket) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('latin1');
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  const [statusLine, ...rest] = head.split('\r\n');
  return {
    status: Number((statusLine as string).split(' ')[1]),
    setCookies: rest.filter((l) => /^set-cookie:/i.test(l)).map((l) => l.slice(l.indexOf(':') + 2)),
    head,
  };
}
