import type { ServerResponse } from 'node:http';

/**
 * Every code the gateway answers or logs, once, with the HTTP status it is answered with (undefined:
 * only ever logged) and its default message. A code is its own wire name: the `error` of a JSON body,
 * the `code` of a log line. Two families, kept apart because clients already rely on both:
 * - `session_...`: why a request's session is not let through (the app's users see these; lowercase,
 *   also the `reason=` of a redirect and the close reason of a WebSocket);
 * - `SG_ERR_...`: the gateway's own refusals and failures, and problems it logs; `SG_WARN_...`: what
 *   works but deserves a look. Log lines that report no problem (the store is back) carry an `event`.
 * README's Troubleshooting table and openapi/admin.yaml list the same codes (test/unit/errors.test.ts).
 */
export const ERRORS = {
  // Session rejections: a request whose session is not live (proxy/rejection.ts).
  session_superseded: {
    status: 401,
    message: 'Another session has been started using your account. You will now be signed out.',
  },
  session_expired: { status: 401, message: 'Your session has expired. Please sign in again.' },
  session_logged_out: { status: 401, message: 'You have signed out. Please sign in again.' },
  session_ended: {
    status: 401,
    message: 'This session was ended from another device or by an administrator. Please sign in again.',
  },
  session_unknown: { status: 401, message: 'Your session is not recognised. Please sign in again.' },
  session_store_unavailable: {
    status: 503,
    message: 'Sessions cannot be checked right now. Please try again shortly.',
  },
  session_limit_reached: {
    status: 409,
    message:
      'Your account already has the maximum number of active sessions. Sign out on another device, then try again.',
  },
  session_seat_limit_reached: {
    status: 409,
    message:
      'Your organisation already has the maximum number of active sessions. Try again later, or ask someone to sign out.',
  },
  session_required: { status: 401, message: 'Sign in to see and manage your sessions.' },
  // A login that kept the session id the browser had before it (proxy/fixation.ts, sessions.fixation).
  session_fixation: {
    status: 403,
    message:
      'This sign-in was refused: the site kept the session it had before you signed in. Please sign in again.',
  },

  // Requests the gateway refuses to forward: it cannot read them as the app would.
  SG_ERR_BAD_REQUEST: { status: 400, message: 'malformed HTTP request' },
  SG_ERR_AMBIGUOUS_PATH: { status: 400, message: 'ambiguous path refused' },
  SG_ERR_AMBIGUOUS_REQUEST: { status: 400, message: 'the request cannot be read as the app would' },
  SG_ERR_AMBIGUOUS_LOGIN: { status: 400, message: 'the login cannot be read as the app would' },
  SG_ERR_AMBIGUOUS_TOKEN: {
    status: 400,
    message:
      'refused: a token sent twice with different values (a cookie, header or query field), or undecodable',
  },
  SG_ERR_UNSUPPORTED_ENCODING: {
    status: 415,
    message: 'cannot read a request body in this Content-Encoding',
  },
  SG_ERR_LOGIN_BODY_TOO_LARGE: { status: 413, message: 'the request body is too large' },
  SG_ERR_UPGRADE_REFUSED: { status: 400, message: 'only websocket upgrades are supported' },
  SG_ERR_REQUEST_TIMEOUT: { status: 408, message: 'the request did not arrive in time' },

  // Logins the gateway cannot register (proxy/exchange-tap.ts, proxy/probe.ts).
  SG_ERR_LOGIN_UNREADABLE: { status: 502, message: 'the gateway could not read the login response' },
  SG_ERR_LOGIN_BODY_UNREADABLE: { status: undefined, message: 'a login answer body could not be decoded' },
  SG_ERR_LOGIN_NO_TOKEN: { status: undefined, message: 'a successful login carried no token' },
  SG_ERR_LOGIN_NO_USER: { status: undefined, message: 'a successful login named no user' },
  SG_ERR_LOGIN_NO_GROUP: {
    status: 403,
    message: 'the login names no group the gateway can read (sessions.groups.onMissing: refuse)',
  },
  SG_ERR_LOGIN_NO_TENANT: {
    status: 403,
    message: 'the login names no tenant the gateway can read (sessions.seats.onMissing: refuse)',
  },
  SG_ERR_LOGIN_HOLDS_FULL: {
    status: 503,
    message: 'Too many sign-ins are waiting for a choice right now. Please try again shortly.',
  },
  SG_ERR_LOGIN_HOLD_GONE: {
    status: 410,
    message:
      'This sign-in is no longer waiting: it was completed, cancelled or timed out. Please sign in again.',
  },
  SG_ERR_LOGIN_PROBE_FAILED: { status: 503, message: 'the login could not be verified; please try again' },
  SG_ERR_REFRESH_UNLINKED: { status: undefined, message: 'a refresh of a token that is not live' },
  SG_ERR_ROTATION: { status: undefined, message: 'a rotated token could not be registered' },

  // The app behind the gateway (proxy/forward.ts, proxy/upgrade.ts).
  SG_ERR_UPSTREAM_CONNECT: { status: 502, message: 'the app could not be reached' },
  SG_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'the app did not answer in time' },
  SG_ERR_UPSTREAM: { status: 502, message: 'the connection to the app failed' },
  SG_ERR_UPSTREAM_UPGRADE: { status: undefined, message: 'a WebSocket tunnel to the app failed' },

  // The session store (store/).
  SG_ERR_STORE_UNAVAILABLE: { status: 503, message: 'the session store is unavailable' },
  SG_ERR_STORE: { status: undefined, message: 'a background store operation failed' },
  SG_ERR_STORE_CONFLICT: { status: undefined, message: 'a concurrent change of one user; retried' },
  SG_ERR_SESSION_CONTENTION: { status: 500, message: 'too many concurrent changes of one user; try again' },
  SG_ERR_CHANNEL_LOST: { status: undefined, message: 'the invalidation channel was lost' },

  // The admin API and the self-service pages.
  SG_ERR_ADMIN_UNAUTHORIZED: { status: 401, message: 'missing or wrong admin token' },
  SG_ERR_NOT_FOUND: { status: 404, message: 'There is nothing here.' },
  SG_ERR_METHOD: { status: 405, message: 'method not allowed' },
  SG_ERR_SESSION_NOT_FOUND: { status: 404, message: 'no live session with this id' },
  SG_ERR_CSRF: { status: 403, message: 'cross-site request refused' },
  SG_ERR_BODY_TOO_LARGE: { status: 413, message: 'Request body too large.' },

  // Notifications and events.
  SG_ERR_WEBHOOK_STATUS: { status: undefined, message: 'the webhook receiver answered other than 2xx' },
  SG_ERR_WEBHOOK: { status: undefined, message: 'the webhook receiver could not be reached' },
  SG_ERR_WEBHOOK_GAVE_UP: { status: undefined, message: 'a webhook delivery was dropped' },
  SG_ERR_EVENT_LISTENER: { status: undefined, message: 'an event listener failed' },
  // New-login e-mails (notify/email.ts) and the "not me" link (ui/not-me.ts).
  SG_ERR_EMAIL: { status: undefined, message: 'an e-mail could not be sent; retried' },
  SG_ERR_EMAIL_GAVE_UP: { status: undefined, message: 'an e-mail was dropped after its last attempt' },
  SG_ERR_EMAIL_QUEUE_FULL: { status: undefined, message: 'an e-mail was dropped: the queue is full' },
  SG_ERR_EMAIL_NO_RECIPIENT: { status: undefined, message: 'no usable e-mail address for the user' },
  SG_ERR_NOT_ME_FORGED: {
    status: 404,
    message:
      'This link is not valid. Nothing was changed. Open your sessions page to see where you are signed in.',
  },
  SG_ERR_NOT_ME_EXPIRED: {
    status: 410,
    message:
      'This link has expired. Nothing was changed. Sign in and open your sessions page to end other sessions.',
  },
  SG_ERR_NOT_ME_USED: {
    status: 410,
    message:
      'This link was used already: the account was signed out everywhere then. Nothing was changed now.',
  },
  SG_ERR_NOT_ME_OTHER_USER: {
    status: 403,
    message: 'This link is for another account than the one signed in here. Nothing was changed.',
  },

  SG_ERR_CONFIG: { status: undefined, message: 'invalid configuration' },

  // Warnings: the gateway works, but something deserves a look.
  SG_WARN_CONFIG: { status: undefined, message: 'a configuration that works but is risky' },
  SG_WARN_SHARED_TOKEN: {
    status: undefined,
    message: 'a secondary token already belongs to another session',
  },
  SG_WARN_SESSION_FIXATION: {
    status: undefined,
    message: 'a login kept the session id its request carried (session fixation risk)',
  },
  SG_WARN_TLS_RELOAD: { status: undefined, message: 'a changed certificate was not loaded' },
  SG_WARN_TLS_WATCH: { status: undefined, message: "the certificate's directory cannot be watched" },
  SG_WARN_GEO_RELOAD: { status: undefined, message: 'a changed geo database was not loaded' },
  SG_WARN_LIVE_SIGNOUT_CSP: {
    status: undefined,
    message: "a page's Content-Security-Policy does not allow the live sign-out script",
  },

  SG_ERR_INTERNAL: { status: 500, message: 'the gateway failed' },
} as const satisfies Record<string, { readonly status: number | undefined; readonly message: string }>;

/** A code of the registry: a typo does not compile. */
export type ErrorCode = keyof typeof ERRORS;

/** The codes a session's request is rejected with (the `session_...` family). */
export type RejectionCode = Extract<ErrorCode, `session_${string}`>;

/** The rejection code each state of a session that is not live is answered with. */
export const STATE_TO_CODE = {
  superseded: 'session_superseded',
  expired: 'session_expired',
  logged_out: 'session_logged_out',
  ended_by_user: 'session_ended',
  ended_by_admin: 'session_ended',
  unknown: 'session_unknown',
  unavailable: 'session_store_unavailable',
} as const satisfies Record<string, RejectionCode>;

/** The rejection code of a session state, or undefined for a state that is not a rejection (`live`). */
export function rejectionOf(state: string): RejectionCode | undefined {
  return Object.hasOwn(STATE_TO_CODE, state) ? STATE_TO_CODE[state as keyof typeof STATE_TO_CODE] : undefined;
}

/** The codes the gateway answers HTTP requests with (those with a status). */
export type AnsweredCode = {
  [C in ErrorCode]: (typeof ERRORS)[C]['status'] extends number ? C : never;
}[ErrorCode];

/** Whether a code is answered to clients (has a status), not only logged. */
export function isAnswered(code: ErrorCode): code is AnsweredCode {
  return ERRORS[code].status !== undefined;
}

export function statusOf(code: AnsweredCode): number {
  return ERRORS[code].status;
}

/**
 * A clean JSON error `{"error": code, "message": ...}` with the code's status (or `status`, where one
 * code has two: a 431 for oversized headers is a bad request). A response already started cannot
 * carry an error any more: it is cut, so the client cannot take a partial body for a whole one.
 */
export function sendError(
  res: ServerResponse,
  code: AnsweredCode,
  message: string = ERRORS[code].message,
  status: number = statusOf(code),
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: code, message });
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** The JSON body of an error, for answers written to a raw socket (upgrades, malformed requests). */
export function errorBody(code: AnsweredCode, message: string = ERRORS[code].message): string {
  return JSON.stringify({ error: code, message });
}

/**
 * One error base class for sessiongate. Every error carries a stable `code` from the registry that
 * appears in logs and in HTTP error bodies; tests assert on the code, never on the message.
 */
export class SessiongateError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem found in the configuration, with the key path it belongs to. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

/** The configuration is invalid; `problems` lists every problem found, not just the first. */
export class ConfigError extends SessiongateError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(
      'SG_ERR_CONFIG',
      `invalid configuration:\n${problems.map((p) => `  - ${p.path || '(root)'}: ${p.message}`).join('\n')}`,
    );
    this.problems = problems;
  }
}

/** The session store could not answer (Redis unreachable, command timed out). */
export class StoreUnavailableError extends SessiongateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SG_ERR_STORE_UNAVAILABLE', message, options);
  }
}

/** A compare-and-set commit lost to a concurrent change of the same user; the caller retries. */
export class StoreConflictError extends SessiongateError {
  constructor(user: string) {
    super('SG_ERR_STORE_CONFLICT', `concurrent change of the sessions of one user (${user.length} chars)`);
  }
}

/** The commits of one user kept losing to concurrent changes. */
export class SessionContentionError extends SessiongateError {
  constructor() {
    super('SG_ERR_SESSION_CONTENTION', ERRORS.SG_ERR_SESSION_CONTENTION.message);
  }
}

/** The upstream could not be reached or did not answer in time; its status comes with its code. */
export class UpstreamError extends SessiongateError {
  declare readonly code: 'SG_ERR_UPSTREAM_CONNECT' | 'SG_ERR_UPSTREAM_TIMEOUT' | 'SG_ERR_UPSTREAM';
  readonly status: number;
  constructor(
    code: 'SG_ERR_UPSTREAM_CONNECT' | 'SG_ERR_UPSTREAM_TIMEOUT' | 'SG_ERR_UPSTREAM',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.status = statusOf(code);
  }
}

/** The code of a thrown value: a sessiongate error's own, else `fallback`. */
export function codeOf(err: unknown, fallback: ErrorCode = 'SG_ERR_INTERNAL'): ErrorCode {
  return err instanceof SessiongateError ? err.code : fallback;
}
