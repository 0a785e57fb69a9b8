import type { IncomingMessage } from 'node:http';
import type { TrustedProxies } from './client-address.js';

/**
 * Hop-by-hop headers (RFC 9110 section 7.6.1) never cross the proxy, nor do headers named in
 * `Connection`. `proxy-authorization` is for this proxy. `expect` is answered by Node itself.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'http2-settings',
]);

const FORWARDING = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'forwarded',
  'x-real-ip',
]);

/** Replacements of the token-bearing headers (a dead token left out on a login route). */
export interface TokenHeaderOverrides {
  readonly cookie?: string | undefined;
  readonly authorization?: string | undefined;
}

/**
 * The request headers sent upstream, as a flat [name, value, ...] list (undici takes it as is).
 * Client-sent forwarding headers survive only from a trusted proxy; the gateway sets its own.
 *
 * `Cookie` and `Authorization` go upstream exactly as the gateway read them: one `Cookie` (several
 * are joined with `; `, as Node and HTTP/2 do) and the one `Authorization` Node kept. Sent raw, a
 * second `Authorization` or `Cookie` line could be the one the app reads, with a token never checked.
 */
export function upstreamRequestHeaders(
  req: IncomingMessage,
  clientIp: string,
  trusted: TrustedProxies,
  keepUpgrade: boolean,
  overrides?: TokenHeaderOverrides,
): string[] {
  const raw = req.rawHeaders;
  const peerTrusted = trusted.isTrusted(req.socket.remoteAddress);
  const connection = req.headers.connection;
  const named =
    connection !== undefined && connection !== 'keep-alive' && connection !== 'close'
      ? new Set(
          connection
            .toLowerCase()
            .split(',')
            .map((s) => s.trim()),
        )
      : undefined;
  const out: string[] = [];
  let xff: string | undefined;
  let proto: string | undefined;
  let host: string | undefined;
  let hostSent = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    // HTTP/2 pseudo-headers (`:path`, `:authority`...) are not headers: the app gets a Host instead.
    if (name.charCodeAt(0) === 58 /* : */) continue;
    const lower = name.toLowerCase();
    if (lower === 'host') hostSent = true;
    if (HOP_BY_HOP.has(lower)) {
      if (keepUpgrade && (lower === 'upgrade' || lower === 'connection')) out.push(name, value);
      continue;
    }
    if (named !== undefined && named.has(lower)) continue;
    if (lower === 'cookie' || lower === 'authorization') continue;
    if (FORWARDING.has(lower)) {
      if (!peerTrusted) continue;
      if (lower === 'x-forwarded-for') {
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      }
      if (lower === 'x-forwarded-proto') {
        proto = value;
        continue;
      }
      if (lower === 'x-forwarded-host') {
        host = value;
        continue;
      }
    }
    out.push(name, value);
  }
  // An HTTP/2 request names its host in `:authority` (copied to `req.headers.host`, see http2.ts).
  if (!hostSent && req.headers.host !== undefined) out.push('host', req.headers.host);
  const cookie = overrides === undefined || !('cookie' in overrides) ? req.headers.cookie : overrides.cookie;
  if (cookie !== undefined) out.push('cookie', cookie);
  const authorization =
    overrides === undefined || !('authorization' in overrides)
      ? req.headers.authorization
      : overrides.authorization;
  if (authorization !== undefined) out.push('authorization', authorization);
  const peer = req.socket.remoteAddress ?? clientIp;
  const peerIp = peer.startsWith('::ffff:') ? peer.slice(7) : peer;
  out.push('x-forwarded-for', xff === undefined ? peerIp : `${xff}, ${peerIp}`);
  out.push(
    'x-forwarded-proto',
    proto ?? ((req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'),
  );
  const reqHost = host ?? req.headers.host;
  if (reqHost !== undefined) out.push('x-forwarded-host', reqHost);
  return out;
}

/** The response headers sent to the client, as a flat list; raw undici header buffers in. */
export function clientResponseHeaders(raw: readonly Buffer[]): string[] {
  const out: string[] = [];
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1');
    const lower = name.toLowerCase();
    if (lower === 'connection') {
      const v = (raw[i + 1] as Buffer).toString('latin1').toLowerCase();
      if (v.includes(',') || (v !== 'close' && v !== 'keep-alive'))
        named = new Set(v.split(',').map((s) => s.trim()));
      continue;
    }
    if (HOP_BY_HOP.has(lower)) continue;
    out.push(name, (raw[i + 1] as Buffer).toString('latin1'));
  }
  if (named === undefined) return out;
  const filtered: string[] = [];
  for (let i = 0; i < out.length; i += 2) {
    if (!named.has((out[i] as string).toLowerCase())) filtered.push(out[i] as string, out[i + 1] as string);
  }
  return filtered;
}

/** A header list as an object with lower-case names (multi-valued as arrays), for the rules that read it. */
export function headerObject(flat: readonly string[]): Record<string, string | string[]> {
  // No prototype: a header (or a rule) named `constructor` or `__proto__` is an ordinary name.
  const out = Object.create(null) as Record<string, string | string[]>;
  for (let i = 0; i < flat.length; i += 2) {
    const name = (flat[i] as string).toLowerCase();
    const value = flat[i + 1] as string;
    const prev = out[name];
    if (prev === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}
