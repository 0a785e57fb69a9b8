/**
 * The app behind every proxy in the bench: any GET answers a fixed 100-byte body (keep-alive), and
 * `POST /api/login` with `{"username":"..."}` answers a fresh random access token for that user, the
 * shape the bench gateways' login rule reads (`json:accessToken`, `json:user.id`); `POST /api/refresh`
 * a fresh `accessToken` (the soak's refresh rule links it to the presented token's session).
 *
 * Usage: node dist/bench/servers/upstream.js --port <port>
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } },
});

const BODY = Buffer.from(
  'sessiongate bench upstream: a small fixed body, the same for every GET request.'.padEnd(100, '.'),
);
const BODY_HEADERS = { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(BODY.length) };
/** Login bodies are tiny; anything larger is a bench bug, not a load to absorb. */
const MAX_LOGIN_BODY = 64 * 1024;

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_LOGIN_BODY) chunks.push(chunk);
    });
    req.on('end', () => resolve(size <= MAX_LOGIN_BODY ? Buffer.concat(chunks).toString('utf8') : undefined));
    req.on('error', reject);
  });
}

function usernameOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body !== 'object' || body === null) return undefined;
    const username = (body as Record<string, unknown>)['username'];
    return typeof username === 'string' && username !== '' ? username : undefined;
  } catch {
    return undefined;
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function handleLogin(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const username = usernameOf(await readBody(req));
  if (username === undefined) return json(res, 400, { error: 'expected {"username":"..."}' });
  json(res, 200, { accessToken: randomBytes(32).toString('base64url'), user: { id: username } });
}

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  if (req.method === 'GET') {
    res.writeHead(200, BODY_HEADERS);
    res.end(BODY);
    return;
  }
  if (req.method === 'POST' && req.url === '/api/login') {
    handleLogin(req, res).catch(() => res.destroy());
    return;
  }
  // The soak's refreshes: a new token for the session of the one presented (the gateway links them).
  if (req.method === 'POST' && req.url === '/api/refresh') {
    req.resume();
    req.once('end', () => json(res, 200, { accessToken: randomBytes(32).toString('base64url') }));
    return;
  }
  json(res, 404, { error: 'not found' });
});
// Above the proxies' idle timeouts, so the upstream never closes a pooled connection mid-request.
server.headersTimeout = 70_000;

server.listen(Number(values.port ?? 0), values.host, () => {
  const address = server.address();
  console.log(JSON.stringify({ msg: 'upstream listening', address }));
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
