/**
 * `ui.liveSignOut`: one script tag inserted into the HTML pages of live sessions, on their way to the
 * browser, without buffering them. Decided once per response from its head (method, status, type,
 * encoding, Cache-Control, Content-Security-Policy); the body then streams through a transform that
 * holds at most a tag's length across chunk boundaries, decoded and re-encoded when it is compressed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, Transform, Writable, type TransformCallback } from 'node:stream';
import {
  constants,
  createBrotliCompress,
  createBrotliDecompress,
  createDeflate,
  createGunzip,
  createGzip,
  createInflate,
  createInflateRaw,
} from 'node:zlib';
import type { Logger } from '../observability/logger.js';
import type { LiveResponseListener, ResponseHead } from './forward.js';

// ---------------------------------------------------------------------------------------------------
// The insertion point, found in a stream of bytes

const LT = 0x3c;
const SLASH = 0x2f;
/** `</head` and `</body`, matched ASCII-case-insensitively, then `>`, `/` or whitespace (an end tag). */
const NAMES = [Buffer.from('head'), Buffer.from('body')];
/** `</` + four letters + the byte that ends the tag name. */
const MATCH_LENGTH = 7;

const isTagEnd = (b: number): boolean =>
  b === 0x3e || b === SLASH || b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d;

/**
 * How many bytes of `data` from `at` agree with `</head?` or `</body?`: MATCH_LENGTH for an end tag,
 * fewer when `data` ends while they agree (the tag may go on in the next chunk), -1 when they differ.
 */
function matchAt(data: Buffer, at: number): number {
  const available = Math.min(data.length - at, MATCH_LENGTH);
  for (const name of NAMES) {
    let k = 0;
    for (; k < available; k++) {
      const b = data[at + k] as number;
      // `| 0x20` folds ASCII upper case to lower (and maps no other byte onto a lower-case letter).
      const ok =
        k === 0 ? b === LT : k === 1 ? b === SLASH : k < 6 ? (b | 0x20) === name[k - 2] : isTagEnd(b);
      if (!ok) break;
    }
    if (k === available) return k;
  }
  return -1;
}

/**
 * Inserts `tag` before the first `</head>` (or, when `</body>` comes first, before it: a page without a
 * head end tag) of a byte stream: ASCII-compatible charsets (UTF-8, Latin-1...) match bytewise. A page
 * with neither passes unchanged. Pure: `push` returns what to send now, `end` what is left.
 */
export class TagInserter {
  readonly #tag: Buffer;
  #held: Buffer | undefined;
  #done = false;

  constructor(tag: Buffer) {
    this.#tag = tag;
  }

  /** The tag has been placed. */
  get inserted(): boolean {
    return this.#done;
  }

  push(chunk: Buffer): Buffer[] {
    if (this.#done) return [chunk];
    const data = this.#held === undefined ? chunk : Buffer.concat([this.#held, chunk]);
    this.#held = undefined;
    let from = 0;
    for (;;) {
      const at = data.indexOf(LT, from);
      if (at < 0) return [data];
      const m = matchAt(data, at);
      if (m === MATCH_LENGTH) {
        this.#done = true;
        return [data.subarray(0, at), this.#tag, data.subarray(at)];
      }
      if (m > 0 && at + m >= data.length) {
        // A tag may start here and end in the next chunk: hold these few bytes (fewer than MATCH_LENGTH).
        this.#held = Buffer.from(data.subarray(at));
        return at === 0 ? [] : [data.subarray(0, at)];
      }
      from = at + 1;
    }
  }

  end(): Buffer[] {
    const rest = this.#held;
    this.#held = undefined;
    return rest === undefined ? [] : [rest];
  }
}

// ---------------------------------------------------------------------------------------------------
// Content-Security-Policy: may a same-origin script load, and open its event stream?

export type ScriptAllowance =
  | { readonly allowed: true; readonly nonce?: string | undefined }
  | { readonly allowed: false; readonly why: string };

const NONCE = /^'nonce-([A-Za-z0-9+/_=-]+)'$/i;

/**
 * Whether the enforced policies (each `Content-Security-Policy` header value; a value may hold several
 * policies, comma-separated) let a parser-inserted `<script src>` of this origin run and `connect` to
 * this origin (CSP Level 3). Every policy must allow it. A script is allowed by `'self'` or `*`
 * (ignored under `'strict-dynamic'`), or by a nonce the policy lists, which the tag then carries: the
 * app's own nonce of this response, so the policy is never rewritten. Host and scheme sources are not
 * matched (the gateway cannot tell the origin the browser sees behind other proxies): such a policy is
 * treated as forbidding, and the page is left alone. Hashes cannot allow an external script here.
 */
export function scriptAllowance(headerValues: readonly string[]): ScriptAllowance {
  let nonce: string | undefined;
  for (const value of headerValues)
    for (const policy of value.split(',')) {
      const directives = parsePolicy(policy);
      if (directives.size === 0) continue;
      const sandbox = directives.get('sandbox');
      if (
        sandbox !== undefined &&
        !(sandbox.includes('allow-scripts') && sandbox.includes('allow-same-origin'))
      )
        return { allowed: false, why: 'sandbox' };
      const script =
        directives.get('script-src-elem') ?? directives.get('script-src') ?? directives.get('default-src');
      if (script !== undefined) {
        const dynamic = script.includes("'strict-dynamic'");
        const bySource = !dynamic && (script.includes("'self'") || script.includes('*'));
        if (!bySource) {
          const listed = script.map((s) => NONCE.exec(s)?.[1]).filter((n) => n !== undefined);
          const usable = nonce === undefined ? listed[0] : listed.find((n) => n === nonce);
          if (usable === undefined) return { allowed: false, why: 'script-src' };
          nonce = usable;
        }
      }
      const connect = directives.get('connect-src') ?? directives.get('default-src');
      if (connect !== undefined && !(connect.includes("'self'") || connect.includes('*')))
        return { allowed: false, why: 'connect-src' };
    }
  return { allowed: true, nonce };
}

/** A policy's directives, names lower-cased; the first of a repeated directive wins (CSP3 2.2.1). */
function parsePolicy(policy: string): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  for (const part of policy.split(';')) {
    const tokens = part
      .trim()
      .split(/[ \t\n\f\r]+/)
      .filter((t) => t.length > 0);
    const name = tokens[0]?.toLowerCase();
    if (name === undefined || directives.has(name)) continue;
    directives.set(
      name,
      tokens
        .slice(1)
        .map((t) => (t.startsWith("'") && !t.toLowerCase().startsWith("'nonce-") ? t.toLowerCase() : t)),
    );
  }
  return directives;
}

// ---------------------------------------------------------------------------------------------------
// The response listener

/** Why a live session's HTML page was served without the script (a fixed set: metric labels). */
export const LIVE_SIGNOUT_SKIPS = ['csp', 'encoding', 'no_transform'] as const;
export type LiveSignOutSkip = (typeof LIVE_SIGNOUT_SKIPS)[number];

export interface HtmlInjectionDeps {
  /** The script's URL (`{prefix}live.js`). */
  readonly scriptUrl: string;
  /** A page got the tag (its body's encoding: identity, gzip, br, deflate). */
  readonly onInjected: (encoding: Encoding) => void;
  /** A page was left alone. */
  readonly onSkipped: (why: LiveSignOutSkip) => void;
  /** A compressed body that did not decode: the response was cut. */
  readonly onCorrupt: () => void;
  readonly logger: Logger;
}

export type Encoding = 'identity' | 'gzip' | 'br' | 'deflate';

/** Statuses whose HTML is a page a user looks at (no 1xx, 204, 205, 206, 3xx, 304). */
const isPageStatus = (s: number): boolean =>
  (s >= 200 && s < 300 && s !== 204 && s !== 205 && s !== 206) || s >= 400;

const NO_TRANSFORM = /(^|[\s,])no-transform\s*(,|$)/i;

/** Headers that describe the app's exact bytes, false once the body changed. */
const DIGESTS = new Set(['content-length', 'content-md5', 'content-digest', 'repr-digest', 'digest']);

/**
 * The listener of live sessions' responses that inserts the tag into their HTML pages, built once at
 * startup (only with `ui.liveSignOut`). It edits the head in place (Content-Length and digests
 * removed: the body is sent chunked; a strong ETag made weak, as the bytes differ but the page is the
 * same to the app, so its `If-None-Match` still matches) and returns the stream the body is written
 * to. Left alone: HEAD, a browser's request for anything but a document (`Sec-Fetch-Dest`), non-page statuses, Content-Range, non-HTML, `Cache-Control: no-transform`
 * (RFC 9110 section 7.7), encodings other than one of gzip/br/deflate, and a CSP that forbids the
 * script (logged once per process, counted each time).
 */
export function compileHtmlInjection(deps: HtmlInjectionDeps): LiveResponseListener {
  const { logger } = deps;
  const plainTag = Buffer.from(`<script src="${deps.scriptUrl}" defer></script>`);
  let cspLogged = false;
  return (res: ServerResponse, head: ResponseHead, _tokenId: string, req: IncomingMessage) => {
    if (req.method === 'HEAD' || !isPageStatus(head.status)) return undefined;
    // A browser says what a request is for (Fetch Metadata): HTML that a script fetched (htmx, Turbo)
    // or a frame loads is no tab of its own. Clients that do not say are served as a tab.
    const dest = req.headers['sec-fetch-dest'];
    if (dest !== undefined && dest !== 'document') return undefined;
    const h = head.headers;
    // The type first: a response that is not HTML (most of a live session's) pays one scan, and
    // only names of a length that may match are lower-cased.
    if (!isHtml(h)) return undefined;
    let encoding: string | undefined;
    let policies: string[] | undefined;
    let noTransform = false;
    for (let i = 0; i < h.length; i += 2) {
      const raw = h[i] as string;
      const n = raw.length;
      if (n !== 13 && n !== 16 && n !== 23) continue;
      const name = raw.toLowerCase();
      const value = h[i + 1] as string;
      if (name === 'content-encoding') encoding = encoding === undefined ? value : `${encoding},${value}`;
      else if (name === 'content-range') return undefined;
      else if (name === 'content-security-policy') (policies ??= []).push(value);
      else if (name === 'cache-control' && NO_TRANSFORM.test(value)) noTransform = true;
    }
    if (noTransform) {
      deps.onSkipped('no_transform');
      return undefined;
    }
    const coding = codingOf(encoding);
    if (coding === undefined) {
      deps.onSkipped('encoding');
      return undefined;
    }
    let tag = plainTag;
    if (policies !== undefined) {
      const allowance = scriptAllowance(policies);
      if (!allowance.allowed) {
        deps.onSkipped('csp');
        if (!cspLogged) {
          cspLogged = true;
          logger.warn(
            { code: 'SG_WARN_LIVE_SIGNOUT_CSP', directive: allowance.why },
            "a page's Content-Security-Policy does not allow the live sign-out script: such pages are served unchanged (logged once)",
          );
        }
        return undefined;
      }
      if (allowance.nonce !== undefined)
        tag = Buffer.from(`<script src="${deps.scriptUrl}" nonce="${allowance.nonce}" defer></script>`);
    }
    rewriteHead(h);
    deps.onInjected(coding);
    return bodyRewrite(res, tag, coding, deps.onCorrupt);
  };
}

const HTML_TYPE = /^\s*text\/html\s*(;|$)/i;

/** The response's Content-Type is text/html (parameters allowed, e.g. a charset). */
function isHtml(h: readonly string[]): boolean {
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i] as string;
    if (name.length === 12 && name.toLowerCase() === 'content-type')
      return HTML_TYPE.test(h[i + 1] as string);
  }
  return false;
}

/** One coding the gateway decodes and encodes again; undefined for none it handles (or several). */
function codingOf(value: string | undefined): Encoding | undefined {
  if (value === undefined) return 'identity';
  const v = value.trim().toLowerCase();
  if (v === '' || v === 'identity') return 'identity';
  if (v === 'gzip' || v === 'x-gzip') return 'gzip';
  if (v === 'br') return 'br';
  if (v === 'deflate') return 'deflate';
  return undefined;
}

function rewriteHead(h: string[]): void {
  for (let i = 0; i < h.length;) {
    const name = (h[i] as string).toLowerCase();
    if (DIGESTS.has(name)) {
      h.splice(i, 2);
      continue;
    }
    if (name === 'etag' && !(h[i + 1] as string).startsWith('W/')) h[i + 1] = `W/${h[i + 1] as string}`;
    i += 2;
  }
}

/** The inserter as a stream. */
class InsertingStream extends Transform {
  readonly #inserter: TagInserter;
  constructor(tag: Buffer) {
    super();
    this.#inserter = new TagInserter(tag);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    for (const part of this.#inserter.push(chunk)) if (part.length > 0) this.push(part);
    cb();
  }
  override _flush(cb: TransformCallback): void {
    for (const part of this.#inserter.end()) this.push(part);
    cb();
  }
}

/**
 * The body's way to the client: the inserter, between a decoder and an encoder for a compressed body.
 * Each upstream chunk is flushed through the encoder (sync flush) so a page that streams keeps
 * streaming; that costs a little compression. Brotli at quality 5, not its default 11, which costs
 * tens of milliseconds per page.
 */
function bodyRewrite(res: ServerResponse, tag: Buffer, coding: Encoding, onCorrupt: () => void): Writable {
  const insert = new InsertingStream(tag);
  // pipeline destroys every stream (the response too) when one fails or the client goes away.
  const done = () => undefined;
  const decoding = <T extends Writable>(decode: T): T => {
    // Only the decoder's own error says the app's body did not decode (not a client abort).
    decode.once('error', onCorrupt);
    return decode;
  };
  switch (coding) {
    case 'identity':
      pipeline(insert, res, done);
      return insert;
    case 'gzip': {
      const decode = decoding(createGunzip());
      pipeline(decode, insert, createGzip({ flush: constants.Z_SYNC_FLUSH }), res, done);
      return decode;
    }
    case 'deflate':
      // RFC 9110 "deflate" is zlib-wrapped, but some servers send raw deflate (as browsers accept):
      // the first two bytes tell which. Sent on zlib-wrapped either way.
      return new DeflateFront((zlib) => {
        const decode = decoding(zlib ? createInflate() : createInflateRaw());
        pipeline(decode, insert, createDeflate({ flush: constants.Z_SYNC_FLUSH }), res, done);
        return decode;
      });
    case 'br': {
      const decode = decoding(createBrotliDecompress());
      const encode = createBrotliCompress({
        flush: constants.BROTLI_OPERATION_FLUSH,
        params: { [constants.BROTLI_PARAM_QUALITY]: 5 },
      });
      pipeline(decode, insert, encode, res, done);
      return decode;
    }
  }
}

/**
 * The writable end of a deflate body's rewrite: holds the first two bytes, which say whether the body
 * is zlib-wrapped (RFC 1950: compression method 8, the header a multiple of 31) or raw deflate, then
 * starts the decoder that fits and writes everything on through it (its callbacks pace the writer).
 */
class DeflateFront extends Writable {
  readonly #start: (zlib: boolean) => Writable;
  #decoder: Writable | undefined;
  #held: Buffer | undefined;

  constructor(start: (zlib: boolean) => Writable) {
    super();
    this.#start = start;
    // The decoder's own errors are reported by the pipeline it is in; a write after them only fails.
    this.on('error', () => undefined);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#decoder !== undefined) return void this.#decoder.write(chunk, cb);
    const data = this.#held === undefined ? chunk : Buffer.concat([this.#held, chunk]);
    if (data.length < 2) {
      this.#held = data;
      return cb();
    }
    this.#held = undefined;
    const zlib =
      ((data[0] as number) & 0x0f) === 8 && ((data[0] as number) * 256 + (data[1] as number)) % 31 === 0;
    this.#decoder = this.#start(zlib);
    this.#decoder.write(data, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const decoder = this.#decoder ?? this.#start(true);
    if (this.#held !== undefined) decoder.write(this.#held);
    decoder.end(() => cb());
  }
}
