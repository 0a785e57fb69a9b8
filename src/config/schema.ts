/**
 * The one configuration schema: keys, defaults, validation and documentation in one place.
 * Every key is documented here and in README.md ("Configuration"); `test/config/readme.test.ts`
 * keeps the two in step.
 */
import { z } from 'zod';
import { parseBytes, parseDuration } from './duration.js';
import { addressRange, fullHttpUrl, hostPort } from './addresses.js';
import {
  presentAs,
  presentedSource,
  probeUserSource,
  requestTokenSource,
  tokenSource,
  tokenSources,
  userSource,
} from './sources.js';

const duration = (what: string) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration such as 500ms, 30s, 30m, 12h or 7d (${what}), got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    return ms;
  });

const bytes = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = parseBytes(v);
  if (n === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size such as 1mb, 64kb or 4096, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return n;
});

const listenAddress = (defaultHost: string) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const s = String(v);
    const m = /^(?:(\[[0-9a-fA-F:]+\]|[^:]+):)?(\d{1,5})$/.exec(s);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port > 65535) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a port (8080) or "host:port" (0.0.0.0:8080), got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : defaultHost;
    return { host, port };
  });

/** An origin: requests are forwarded with their own path, so a path here would be silently dropped. */
const httpUrl = z.string().transform((v, ctx) => {
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
    if (u.pathname !== '/' || u.search !== '') {
      ctx.addIssue({
        code: 'custom',
        message: `expected an origin such as http://app:3000 (requests keep their own path; ${JSON.stringify(u.pathname + u.search)} would be dropped), got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    return u.origin;
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: `expected an http:// or https:// URL, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
});

/** `**` stands for any number of segments: at the end, and at most once inside a pattern. */
const oneInnerDoubleStar = (p: string) =>
  (p.replace(/\/\*\*$/, '').match(/(^|\/)\*\*(\/|$)/g) ?? []).length <= 1;
const DOUBLE_STAR = 'at most one ** inside a pattern (and one at its end)';
const pathPattern = z
  .string()
  .regex(/^\//, 'expected a path pattern starting with /')
  .refine(oneInnerDoubleStar, DOUBLE_STAR);

/** `POST /api/login`, `GET,POST /login`, `* /oauth/callback/**`. */
const routeMatch = z
  .string()
  .regex(
    /^(\*|[A-Z]+(,[A-Z]+)*) \/\S*$/,
    'expected "METHOD /path" such as "POST /api/login" (methods upper-case, comma-separated, or *)',
  )
  .refine((m) => oneInnerDoubleStar(m.slice(m.indexOf(' ') + 1)), DOUBLE_STAR);

const normalizeStep = z.enum(['trim', 'lowercase', 'nfkc']);

const statusRange = z.union([
  z.number().int().min(100).max(599),
  z.string().regex(/^\d{3}(-\d{3})?$/, 'expected a status (302) or a range (200-299)'),
]);

const successRule = z
  .object({
    /** Status or statuses that may count as a successful login. @default 200-299 */
    status: z.union([statusRange, z.array(statusRange).min(1)]).default('200-299'),
    /** For redirects: the `Location` must start with one of these (path or URL prefix). */
    location: z.union([z.string(), z.array(z.string())]).optional(),
    /** For redirects: a `Location` containing any of these is a failed login (`/login?error`). */
    notLocation: z.union([z.string(), z.array(z.string())]).optional(),
  })
  .strict();

const probeRule = z
  .object({
    /** The app route asked "who am I" with the new token (`GET /api/user`). */
    match: routeMatch,
    /** Where the probe's answer names the user (`json:login`). */
    user: probeUserSource,
    /** How the probe presents the new token. @default the first of `tokens` */
    presentAs: presentAs.optional(),
    /** @default 2s */
    timeout: duration('probe timeout').default('2s'),
    /** What to do with the login response when the probe fails: pass it unregistered, or refuse with 503. @default refuse */
    onFailure: z.enum(['pass', 'refuse']).default('refuse'),
  })
  .strict();

/**
 * Request fields a rule also matches on, for front-controller apps (`index.php?action=login`, `op=login`
 * in the form): every field named must have exactly this value. Read as the app's stack reads it; a
 * field sent twice or in a form stacks disagree on makes the request ambiguous (400).
 */
const fieldConditions = z.record(z.string().min(1), z.string());
const whenConditions = z
  .object({
    /** Query-string fields (`action: login`). */
    query: fieldConditions.optional(),
    /** Form fields of an `application/x-www-form-urlencoded` body (`op: login`). */
    form: fieldConditions.optional(),
  })
  .strict()
  .refine((w) => w.query !== undefined || w.form !== undefined, 'expected query or form conditions');

/** What to do with a successful login response the gateway could not read. @default refuse */
const onUnreadable = z.enum(['refuse', 'pass']).default('refuse');

const loginRule = z
  .object({
    /** Method and path of the login route. */
    match: routeMatch,
    /** Query or form fields the request must also carry (front-controller apps). */
    when: whenConditions.optional(),
    /** The token(s) the login response issues; all belong to the new session (access + refresh, session + remember-me). */
    token: tokenSources,
    /** Where the user is named. Not needed when `probe` is set. */
    user: userSource.optional(),
    /** When a response counts as a login. A failed login never ends a session. */
    success: successRule.default({}),
    /** User normalisation, applied in order. @default [trim] */
    normalize: z.array(normalizeStep).default(['trim']),
    /** Ask the app who the user is when neither request nor response says it (SSO callbacks). */
    probe: probeRule.optional(),
    /**
     * A successful login whose user or body the gateway cannot read (truncated, undecodable, over the cap):
     * `refuse` answers 502 SG_ERR_LOGIN_UNREADABLE and the token never reaches the client; `pass`
     * releases it unregistered (a limit bypass; for trials only). @default refuse
     */
    onUnreadable,
  })
  .strict()
  .superRefine((rule, ctx) => {
    if (!rule.user && !rule.probe)
      ctx.addIssue({ code: 'custom', path: ['user'], message: 'required unless probe is set' });
  });

const refreshRule = z
  .object({
    match: routeMatch,
    when: whenConditions.optional(),
    /** The new token(s) the response issues for the same session. */
    token: tokenSources,
    /** Where the request presents the current token. @default the request's token (see `tokens`) */
    presented: presentedSource.optional(),
    success: successRule.default({}),
  })
  .strict();

/**
 * What `Clear-Site-Data` asks the browser to clear when its session ends (`cookies`, `storage`:
 * localStorage, sessionStorage, IndexedDB; `cache`), or `false` for no header.
 */
const clearSiteData = z.union([z.literal(false), z.array(z.enum(['cookies', 'storage', 'cache'])).min(1)]);

const logoutRule = z
  .object({
    match: routeMatch,
    when: whenConditions.optional(),
    /** Where the request presents the token being revoked (RFC 7009 `token`). @default the request's token */
    presented: presentedSource.optional(),
    /**
     * Statuses that confirm the logout. A 4xx (a logout route the app does not have, a refused CSRF
     * token) ended nothing at the app, so it ends nothing here. @default 2xx and 3xx
     */
    success: successRule.default({ status: '200-399' }),
    /**
     * `Clear-Site-Data` on the confirmed logout's response (unless the app sends its own), so tokens
     * the app keeps in the browser's storage go too. @default [cookies, storage]
     */
    clearSiteData: clearSiteData.default(['cookies', 'storage']),
  })
  .strict();

/** A TLS listener's files (PEM), re-read when they change. Client certificates are not asked for. */
const tlsFiles = z
  .object({
    /** The certificate chain file (PEM): the listener's certificate first, then its intermediates. */
    cert: z.string().min(1),
    /** The private key file (PEM, unencrypted). */
    key: z.string().min(1),
  })
  .strict();

/** Where a login names the user's groups or tenant: a string or an array of strings. */
const GROUP_SOURCE_KINDS: ReadonlySet<string> = new Set([
  'jwt',
  'json',
  'header',
  'request.form',
  'request.json',
]);
const loginAttributeSource = userSource.refine(
  (s) => GROUP_SOURCE_KINDS.has(s.kind),
  'expected jwt:<claim>, json:<path>, header:<name> (response), request.form:<field> or request.json:<path>',
);

const loginGroups = z
  .object({
    /** Where the login names the user's groups (a string or an array of strings): `jwt:role`, `json:user.groups`, `header:x-groups`, `request.form:role`. */
    from: loginAttributeSource,
    /** The limit of each group (`{ admin: 1, staff: 3 }`). @default {} */
    limits: z.record(z.string().min(1), z.number().int().min(1)).default({}),
    /**
     * A login whose groups are missing or not strings (logged as SG_ERR_LOGIN_NO_GROUP, counted):
     * `default` gives the default limit, `refuse` refuses the login with 403. @default default
     */
    onMissing: z.enum(['default', 'refuse']).default('default'),
  })
  .strict();

const redisStore = z
  .object({
    /** `redis://[user:pass@]host:port/db` or `rediss://` (TLS). Ignored when `sentinels` or `cluster` is set. */
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'expected redis:// or rediss://')
      .optional(),
    /** Sentinel addresses (`host:port`, `[IPv6]:port`). */
    sentinels: z.array(hostPort).min(1).optional(),
    /** The Sentinel master name. @default mymaster */
    sentinelName: z.string().default('mymaster'),
    /** Cluster seed nodes (`host:port`, `[IPv6]:port`). */
    cluster: z.array(hostPort).min(1).optional(),
    /** Redis password (or in the URL). */
    password: z.string().optional(),
    /** Prefix of every key and channel, so several apps share one Redis. @default sg: */
    keyPrefix: z.string().default('sg:'),
    /** Per-command timeout on the request path; a stall becomes a failMode decision. @default 250ms */
    commandTimeout: duration('commandTimeout').default('250ms'),
    /** Interval of the subscriber's PING; a missed reply counts as a disconnect. @default 1s */
    pingInterval: duration('pingInterval').default('1s'),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (!r.url && !r.sentinels && !r.cluster)
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'required unless sentinels or cluster is set' });
  });

/**
 * The session event types a webhook can be sent (`SessionEventType` of sessions/events.ts, which config
 * may not import; `notify/webhook.ts` fails to compile when the two differ).
 */
export const WEBHOOK_EVENTS = [
  'session.created',
  'session.superseded',
  'session.replaced',
  'session.refused',
  'session.ended',
  'session.logged_out',
  'session.expired',
  'request.rejected',
  'session.fixation_risk',
  'session.new_device',
  'session.not_me',
  'session.warned',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

/** The events an e-mail can be sent for: a new login, seen from the user's side. */
export const EMAIL_EVENTS = [
  'session.new_device',
  'session.superseded',
  'session.warned',
  'session.created',
] as const;

/**
 * Where a login's e-mail address is: read at login like `groups.from` (a claim of a JWT the app
 * issued, a response JSON field or header), or a template of the user name (`{user}@example.com`).
 */
const emailRecipient = z.string().transform((v, ctx) => {
  if (/^(jwt|json|header):/.test(v)) {
    const read = loginAttributeSource.safeParse(v);
    if (read.success) return read.data;
  } else if (v.includes('{user}')) return { kind: 'template' as const, template: v };
  ctx.addIssue({
    code: 'custom',
    message: `expected json:<path>, jwt:<claim>, header:<name> or a template with {user} such as "{user}@example.com", got ${JSON.stringify(v)}`,
  });
  return z.NEVER;
});

/** The proxied origin as users reach it (https; http only on a loopback address, for trials). */
const publicOrigin = z.string().transform((v, ctx) => {
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    // Reported below.
  }
  const loopback = u !== undefined && /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/.test(u.hostname);
  if (u === undefined || !(u.protocol === 'https:' || (u.protocol === 'http:' && loopback))) {
    ctx.addIssue({
      code: 'custom',
      message: `expected the https:// origin users reach the app at (http:// only for localhost), got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  if (u.pathname !== '/' || u.search !== '' || u.username !== '') {
    ctx.addIssue({
      code: 'custom',
      message: `expected an origin without path, query or credentials, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return u.origin;
});

const smtpUrl = z
  .string()
  .regex(/^smtps?:\/\/[^/]+(:\d+)?\/?$/, 'expected smtp://[user:password@]host:port or smtps://...');

export const configSchema = z
  .object({
    /** Where the gateway listens: a port or "host:port". @default 8080 */
    listen: listenAddress('0.0.0.0').default(8080),
    /** Serve HTTPS (HTTP/2 by ALPN, HTTP/1.1 otherwise) with these files; unset: plain HTTP. */
    tls: tlsFiles.optional(),
    /** The app's origin. */
    upstream: httpUrl,
    /** Upstream timeouts. */
    timeouts: z
      .object({
        /** TCP connect to the upstream; 502 when exceeded. @default 5s */
        connect: duration('connect').default('5s'),
        /** Until the upstream's response headers; 504 when exceeded. @default 60s */
        response: duration('response').default('60s'),
        /** Idle client keep-alive connections close after this. @default 65s */
        keepAlive: duration('keepAlive').default('65s'),
        /** The client's request head must arrive within this (slowloris); 408 when exceeded. @default 10s */
        headers: duration('headers').default('10s'),
        /**
         * The whole client request, head and body, must arrive within this; 408 when exceeded. Long uploads
         * need more. @default 5m
         */
        body: duration('body').default('5m'),
      })
      .strict()
      .superRefine((t, ctx) => {
        // Node refuses a head timeout longer than the whole-request one; say so with the key path.
        if (typeof t.headers === 'number' && typeof t.body === 'number' && t.headers > t.body)
          ctx.addIssue({
            code: 'custom',
            path: ['headers'],
            message: `must not be longer than timeouts.body (${t.headers} ms > ${t.body} ms)`,
          });
      })
      .default({}),
    /** `memory` (one replica), a `redis://` URL, or a Redis object. @default memory */
    store: z
      .union([
        z.literal('memory'),
        z.string().regex(/^rediss?:\/\//, 'expected "memory" or a redis:// URL'),
        redisStore,
      ])
      .default('memory'),
    /** HMAC-SHA256 key for token ids; at least 16 characters. Use `${SESSIONGATE_SECRET}`. */
    secret: z.string().min(16, 'expected at least 16 characters (use ${SESSIONGATE_SECRET})'),
    /** `enforce` rejects; `report-only` logs and counts what would be rejected and passes it. @default enforce */
    mode: z.enum(['enforce', 'report-only']).default('enforce'),
    /** `cached` answers from the LRU within `cache.maxStaleness`; `strict` asks the store on every request. @default cached */
    consistency: z.enum(['cached', 'strict']).default('cached'),
    /** With the store unreachable: `closed` answers 503, `open` passes (logged and counted). @default closed */
    failMode: z.enum(['closed', 'open']).default('closed'),
    cache: z
      .object({
        /** Entries in the per-replica LRU of token decisions, about 1.1 KB each (README "Sizing"). @default 100000 */
        max: z.number().int().min(1).default(100_000),
        /** Maximum age of a cached "live" decision: the bound on cross-replica staleness. @default 1s */
        maxStaleness: duration('maxStaleness').default('1s'),
        /**
         * Raw token -> token id pairs remembered, so a repeated token skips the HMAC; 0 computes it on every
         * request and keeps no raw token past its request. @default 10000
         */
        tokenIdMemo: z.number().int().min(0).default(10_000),
      })
      .strict()
      .default({}),
    sessions: z
      .object({
        /** Live sessions per user. @default 1 */
        limit: z.number().int().min(1).default(1),
        /**
         * `replace-oldest` ends the oldest login; `replace-least-recent` the session used longest ago (the
         * last activity the store holds); `reject-new` refuses the new login with 409; `ask` holds the new
         * login and lets the user choose a session to end (a page for browsers, 409 with the sessions and
         * a URL for API clients); `warn` lets the new login in and warns every other live session of the
         * user (a page at its next navigation, a `Sessiongate-Warning` header on its other responses) until
         * it answers. @default replace-oldest
         */
        onLimit: z
          .enum(['replace-oldest', 'reject-new', 'replace-least-recent', 'ask', 'warn'])
          .default('replace-oldest'),
        /**
         * `onLimit: ask`: how long a held login waits for the user's choice (in this replica's memory,
         * never in the store); past it nothing is released and the user signs in again. @default 5m
         */
        askTimeout: duration('askTimeout').default('5m'),
        /**
         * A session idle this long no longer holds a slot: when a new login needs one, it is ended as
         * expired (its next request: session_expired) before any other is superseded or the login refused.
         * Unset: idle sessions hold their slot until idleTimeout.
         */
        reclaimIdleAfter: duration('reclaimIdleAfter').optional(),
        /** Limits by group, read at login: a user in several groups gets the smallest; others the default. */
        groups: loginGroups.optional(),
        /** A cap on live sessions per tenant, across all its users (exempt users take no seat). */
        seats: z
          .object({
            /** Where the login names its tenant (a string): same source forms as `groups.from`. */
            key: loginAttributeSource,
            /** Live sessions per tenant. */
            max: z.number().int().min(1),
            /** What a login refused for want of a seat is told (409 session_seat_limit_reached). */
            message: z
              .string()
              .default(
                'Your organisation already has the maximum number of active sessions. Try again later, or ask someone to sign out.',
              ),
            /**
             * A login whose tenant is missing or not a string (logged as SG_ERR_LOGIN_NO_TENANT, counted):
             * `default` takes no seat, `refuse` refuses the login with 403. @default default
             */
            onMissing: z.enum(['default', 'refuse']).default('default'),
          })
          .strict()
          .optional(),
        /** Users and groups never counted and never ended by a limit (service accounts). */
        exempt: z
          .object({
            /** User names, as the login rule normalises them. @default [] */
            users: z.array(z.string().min(1)).default([]),
            /** Groups (as `groups.from` reads them). @default [] */
            groups: z.array(z.string().min(1)).default([]),
          })
          .strict()
          .optional(),
        /**
         * Live sessions per device class (`desktop`, `mobile`, `tablet`, `other`, from the User-Agent),
         * inside the user's limit: a second phone ends the first phone (or is refused), never the desktop.
         */
        devices: z
          .object({
            desktop: z.number().int().min(1).optional(),
            mobile: z.number().int().min(1).optional(),
            tablet: z.number().int().min(1).optional(),
            other: z.number().int().min(1).optional(),
          })
          .strict()
          .optional(),
        /** A session unused this long expires (PCI-DSS 8.2.8 asks for 15m). @default 30m */
        idleTimeout: duration('idleTimeout').default('30m'),
        /** A session expires this long after its login, whatever its activity. @default 12h */
        maxAge: duration('maxAge').default('12h'),
        /** A token no login was seen for: `pass` or `reject` (401 session_unknown). @default pass */
        unknownTokens: z.enum(['pass', 'reject']).default('pass'),
        /** Values of rotating tokens kept per session; the oldest drop out. @default 8 */
        maxTokensPerSession: z.number().int().min(1).max(256).default(8),
        /**
         * Last activity is written to the store at most once per this interval per session; shorter than
         * idleTimeout. Idle expiry allows for activity another replica has not written yet, so it fires
         * between idleTimeout and idleTimeout + activityInterval after the last request (Redis). @default 30s
         */
        activityInterval: duration('activityInterval').default('30s'),
        /**
         * How long a dead token (superseded, logged out, expired, ended) is still refused after its
         * session's maxAge, once the session record itself is gone; after that it is unknown. Make it at
         * least as long as the app's own sessions can live. @default 30d
         */
        tombstoneRetention: duration('tombstoneRetention').default('30d'),
        /**
         * A login whose registered token is one the login request already carried (the app kept the
         * pre-login session id: session fixation): `warn` registers it and logs, audits and counts it;
         * `refuse` answers 403 `session_fixation` and registers nothing; `off` judges nothing (and a
         * login response that sets no token cookie passes unregistered, as before). @default warn
         */
        fixation: z.enum(['off', 'warn', 'refuse']).default('warn'),
      })
      .strict()
      .superRefine((s, ctx) => {
        if (s.exempt?.groups.length && !s.groups)
          ctx.addIssue({
            code: 'custom',
            path: ['exempt', 'groups'],
            message: 'needs sessions.groups.from (where the login names its groups)',
          });
        if (typeof s.reclaimIdleAfter === 'number' && typeof s.idleTimeout === 'number')
          if (s.reclaimIdleAfter >= s.idleTimeout)
            ctx.addIssue({
              code: 'custom',
              path: ['reclaimIdleAfter'],
              message: `must be shorter than sessions.idleTimeout (${s.reclaimIdleAfter} ms >= ${s.idleTimeout} ms): a session idle that long has expired already`,
            });
        // Activity written less often than the idle timeout cannot keep an active session alive on
        // another replica (or after a cache refill).
        if (typeof s.activityInterval === 'number' && typeof s.idleTimeout === 'number')
          if (s.activityInterval >= s.idleTimeout)
            ctx.addIssue({
              code: 'custom',
              path: ['activityInterval'],
              message: `must be shorter than sessions.idleTimeout (${s.activityInterval} ms >= ${s.idleTimeout} ms)`,
            });
      })
      .default({}),
    cookies: z
      .object({
        /**
         * Attributes set on every Set-Cookie of a watched token cookie (the `cookie:` entries of `tokens`
         * and of the login and refresh rules) the app sends; the value and every other attribute pass
         * byte for byte. Unset: cookies pass as the app set them.
         */
        harden: z
          .object({
            /** `true` adds HttpOnly where missing; `false` leaves it as the app set it. @default true */
            httpOnly: z.boolean().default(true),
            /**
             * `true` adds Secure; `auto` adds it when the client came over TLS (the listener's own, or
             * `X-Forwarded-Proto: https` from a trusted proxy); `false` leaves it as the app set it.
             * @default auto
             */
            secure: z.union([z.boolean(), z.literal('auto')]).default('auto'),
            /**
             * SameSite set (replacing the app's); `keep` leaves the app's. `none` is only ever added with
             * Secure: a cookie that will not carry Secure keeps the app's value. @default lax
             */
            sameSite: z.enum(['strict', 'lax', 'none', 'keep']).default('lax'),
            /** Harden every cookie the app sets, not only the token cookies. @default false */
            all: z.boolean().default(false),
          })
          .strict()
          .superRefine((h, ctx) => {
            if (h.sameSite === 'none' && h.secure === false)
              ctx.addIssue({
                code: 'custom',
                path: ['sameSite'],
                message: 'SameSite=None needs Secure: set cookies.harden.secure to true or auto',
              });
          })
          .optional(),
      })
      .strict()
      .default({}),
    /** Login routes (one or more). */
    login: z.array(loginRule).min(1, 'expected at least one login rule'),
    /** Token refresh routes: a new token linked to the session of the token presented. */
    refresh: z.array(refreshRule).default([]),
    /** Logout routes: the presented token's session ends (`session_logged_out`). */
    logout: z.array(logoutRule).default([]),
    /** Where requests carry the token, first match wins. @default [bearer] */
    tokens: z.array(requestTokenSource).min(1).default(['bearer']),
    /**
     * Paths under enforcement: a list of patterns, or `{ paths, except }`. `/projects/**` also covers
     * `/projects` and `/projects.json`. @default ["/**"]
     */
    protect: z
      .union([
        z.array(pathPattern),
        z
          .object({
            /** @default ["/**"] */
            paths: z.array(pathPattern).default(['/**']),
            /** Patterns left unchecked (static assets); matched exactly, without the suffix rule. @default [] */
            except: z.array(pathPattern).default([]),
          })
          .strict(),
      ])
      .default(['/**'])
      .transform((p) => (Array.isArray(p) ? { paths: p, except: [] as string[] } : p)),
    routes: z
      .object({
        /**
         * Match rule and protect paths case-sensitively. Only for apps known to route case-sensitively:
         * express, IIS and many Java and PHP routers ignore case, and matching what the app would
         * also route is always safe. @default false
         */
        caseSensitive: z.boolean().default(false),
      })
      .strict()
      .default({}),
    /**
     * Peer addresses (IPs, or CIDR ranges such as `10.0.0.0/8`, `fd00::/8`) whose X-Forwarded-* /
     * Forwarded headers are believed. @default []
     */
    trustedProxies: z.array(addressRange).default([]),
    /** Ambiguous paths (encoded slash, backslash, NUL): `reject` with 400, or `pass` them unchecked by rules. @default reject */
    ambiguousPaths: z.enum(['reject', 'pass']).default('reject'),
    /** Largest login/refresh/logout body (request or response) read; larger ones pass unregistered. @default 1mb */
    maxLoginBody: bytes.default('1mb'),
    reject: z
      .object({
        /** What users are told. */
        message: z
          .string()
          .default('Another session has been started using your account. You will now be signed out.'),
        /** Where browsers are redirected (the reason is appended as `reason=`); unset: a page with the message. */
        redirect: z.string().optional(),
        /** Cookies cleared on rejection, beyond the request's own token cookie. @default [] */
        clearCookies: z.array(z.string()).default([]),
        /**
         * `Clear-Site-Data` on the rejection of a superseded, expired, logged-out or ended session, and
         * on the self-service end of the current device. @default [cookies, storage]
         */
        clearSiteData: clearSiteData.default(['cookies', 'storage']),
      })
      .strict()
      .default({}),
    cors: z
      .object({
        /** Origins whose scripts may read a rejection (`Access-Control-Allow-Origin`). @default [] */
        allowedOrigins: z.array(z.string()).default([]),
      })
      .strict()
      .default({}),
    admin: z
      .object({
        /** The admin listener (API, /metrics, /healthz, /readyz). @default 127.0.0.1:9090 */
        listen: listenAddress('127.0.0.1').default('127.0.0.1:9090'),
        /** Serve the admin listener over HTTPS (HTTP/1.1) with these files; unset: plain HTTP. */
        tls: tlsFiles.optional(),
        /** Bearer token for the admin API; unset: the API answers 401 to everything but the open endpoints. */
        token: z.string().min(16, 'expected at least 16 characters').optional(),
        /** Endpoints reachable without the token. @default [healthz, readyz] */
        open: z.array(z.enum(['healthz', 'readyz', 'metrics'])).default(['healthz', 'readyz']),
      })
      .strict()
      .default({}),
    selfService: z
      .object({
        /** Serve the self-service sessions page on the proxied origin. @default true */
        enabled: z.boolean().default(true),
        /** Reserved path prefix on the proxied origin. @default /.sessiongate/ */
        prefix: z
          .string()
          .regex(/^\/.*\/$/, 'expected a path that starts and ends with /')
          .default('/.sessiongate/'),
      })
      .strict()
      .default({}),
    ui: z
      .object({
        /**
         * Insert a script into live sessions' HTML pages that signs an open tab out the moment its
         * session ends (an event stream under the self-service prefix). @default false
         */
        liveSignOut: z.boolean().default(false),
      })
      .strict()
      .default({}),
    notify: z
      .object({
        webhook: z
          .object({
            /** Where events are POSTed: the whole URL, path and query included. */
            url: fullHttpUrl,
            /** HMAC-SHA256 key for the `X-Sessiongate-Signature` header. */
            secret: z.string().min(16, 'expected at least 16 characters'),
            /**
             * Events sent (`session.warned` happens only under `onLimit: warn`, where it stands for a
             * supersession). @default [session.created, session.superseded, session.warned]
             */
            events: z
              .array(
                z.enum(WEBHOOK_EVENTS, {
                  errorMap: () => ({ message: `unknown event; known events: ${WEBHOOK_EVENTS.join(', ')}` }),
                }),
              )
              .default(['session.created', 'session.superseded', 'session.warned']),
            /** @default 5s */
            timeout: duration('webhook timeout').default('5s'),
            /** Attempts per event, with exponential backoff. @default 5 */
            attempts: z.number().int().min(1).max(20).default(5),
            /** Pending deliveries kept; beyond it the oldest is dropped and counted. @default 1000 */
            maxQueue: z.number().int().min(1).default(1000),
          })
          .strict()
          .optional(),
        /** Add `Sessiongate-Ended-Sessions: <n>` to login responses. @default true */
        loginHeader: z.boolean().default(true),
        /**
         * The origin users reach the app at (`https://app.example.com`), for the links of e-mails and
         * webhooks: never the request's Host header, which a client chooses. Required with `email`.
         */
        baseUrl: publicOrigin.optional(),
        /** The "not me" link of new-login e-mails and webhooks. */
        notMe: z
          .object({
            /** How long a link works. @default 24h */
            ttl: duration('notMe.ttl').default('24h'),
          })
          .strict()
          .default({}),
        /** New-login e-mails, sent by SMTP off the request path. */
        email: z
          .object({
            /** `smtp://host:port` or `smtps://host:port`; credentials as `smtp://${SMTP_USER}:${SMTP_PASSWORD}@host:587`. */
            smtp: smtpUrl,
            /**
             * A PEM file of the CA certificates that sign the SMTP server's (smtps:// or STARTTLS), beside
             * the system's: for a server with a private CA. Read at startup.
             */
            ca: z.string().min(1, 'expected the path of a PEM file').optional(),
            /** SMTP user (`${SMTP_USER}`), instead of one in the URL: no URL-encoding needed. */
            user: z.string().min(1).optional(),
            /** SMTP password (`${SMTP_PASSWORD}`), with `user`. */
            password: z.string().optional(),
            /** The sender, `Sessiongate <security@example.com>`. */
            from: z.string().min(3),
            /** The recipient: `json:<path>`, `jwt:<claim>`, `header:<name>` (read at login) or a template such as `{user}@example.com`. */
            to: emailRecipient,
            /**
             * Events e-mailed (`session.warned` only under `onLimit: warn`, in place of a supersession).
             * @default [session.new_device, session.superseded, session.warned]
             */
            events: z
              .array(
                z.enum(EMAIL_EVENTS, {
                  errorMap: () => ({ message: `expected one of ${EMAIL_EVENTS.join(', ')}` }),
                }),
              )
              .min(1)
              .default(['session.new_device', 'session.superseded', 'session.warned']),
            /** The app's name in messages ({app}). @default the host of notify.baseUrl */
            app: z.string().min(1).optional(),
            /** Subject template. @default New sign-in to {app} */
            subject: z.string().min(1).default('New sign-in to {app}'),
            /** Text body template (placeholders: {user} {device} {place} {time} {app} {sessionsUrl} {notMeUrl}). */
            text: z.string().min(1).optional(),
            /** HTML body template (placeholders as `text`, HTML-escaped). @default a short page with both links */
            html: z.string().min(1).optional(),
            /** Messages waiting to be sent; beyond it a new one is dropped and counted. @default 1000 */
            maxQueue: z.number().int().min(1).default(1000),
            /** Attempts per message. @default 8 */
            attempts: z.number().int().min(1).max(30).default(8),
            /** Wait before the first retry, doubled after each (at most 5m). @default 1s */
            backoff: duration('email backoff').default('1s'),
            /** Per SMTP connection step (connect, greeting, each command). @default 10s */
            timeout: duration('email timeout').default('10s'),
          })
          .strict()
          .optional(),
      })
      .strict()
      .superRefine((n, ctx) => {
        if (n.email && !n.baseUrl)
          ctx.addIssue({
            code: 'custom',
            path: ['baseUrl'],
            message:
              'required with notify.email: the links of an e-mail need the origin users reach the app at',
          });
      })
      .default({}),
    /** A header a CDN sets with the client's location (e.g. cf-ipcountry). */
    locationHeader: z.string().optional(),
    /** Where logins come from: a MaxMind-format database of client addresses. */
    geo: z
      .object({
        /** Path of a MaxMind-format `.mmdb` file (GeoLite2/GeoIP2 City or Country, DB-IP lite); watched. */
        database: z.string().min(1, 'expected the path of an .mmdb file'),
      })
      .strict()
      .optional(),
    log: z
      .object({
        /** @default info */
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** Human-readable logs (for a terminal). @default false */
        pretty: z.boolean().default(false),
      })
      .strict()
      .default({}),
    shutdown: z
      .object({
        /**
         * After SIGTERM, /readyz answers 503 at once and serving goes on this long, so load balancers
         * stop sending before the listener closes (SIGINT or a second signal skip it). @default 5s
         */
        delay: duration('shutdown.delay').default('5s'),
        /** Then the listener closes and in-flight requests get this long to finish. @default 10s */
        grace: duration('shutdown.grace').optional(),
      })
      .strict()
      .default({}),
    /** Deprecated alias of `shutdown.grace` (warned about at startup); `shutdown.grace` wins. */
    shutdownGrace: duration('shutdownGrace').optional(),
  })
  .strict();

const DEFAULT_SHUTDOWN_GRACE = 10_000;

/** `shutdown.grace`, else the deprecated `shutdownGrace`, else 10 s (milliseconds). */
export function shutdownGraceOf(config: Pick<Config, 'shutdown' | 'shutdownGrace'>): number {
  return config.shutdown.grace ?? config.shutdownGrace ?? DEFAULT_SHUTDOWN_GRACE;
}

/** The configuration as written (before defaults). */
export type ConfigInput = z.input<typeof configSchema>;
/** The validated configuration, defaults applied. */
export type Config = z.output<typeof configSchema>;
export type LoginRuleConfig = z.output<typeof loginRule>;
export type RefreshRuleConfig = z.output<typeof refreshRule>;
export type LogoutRuleConfig = z.output<typeof logoutRule>;
export type TokenSourceConfig = z.output<typeof tokenSource>;
export type RequestTokenSourceConfig = z.output<typeof requestTokenSource>;
export type UserSourceConfig = z.output<typeof userSource>;
export type SuccessRuleConfig = z.output<typeof successRule>;
export type WhenConfig = z.output<typeof whenConditions>;
export type RedisStoreConfig = z.output<typeof redisStore>;
export type LoginGroupsConfig = z.output<typeof loginGroups>;
export type ListenAddress = { host: string; port: number };
export type CookieHardenConfig = NonNullable<Config['cookies']['harden']>;
export type EmailConfig = NonNullable<Config['notify']['email']>;
export type EmailEventType = (typeof EMAIL_EVENTS)[number];
