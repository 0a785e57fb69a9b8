/**
 * `onLimit: ask`: logins the limit refused, held in this process until their user chooses a session to
 * end (or cancels, or `sessions.askTimeout` passes). A hold keeps what the app answered (status, headers,
 * body) and what the login would register; it lives in memory only, never in the store: the app's
 * response carries the raw token, which must not leave the process. So a choice must reach the replica
 * that holds the login (README, "Limit policies").
 *
 * A hold is named by a one-time id (192 random bits): the only way to act on it. Taking it (a choice
 * or a cancel) removes it first, so two choices cannot both release it.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { StoreUnavailableError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { HeldLoginOutcome, Metrics } from '../observability/metrics.js';
import type { LoginInput, SessionService } from '../sessions/service.js';
import type { ResponseHead } from './forward.js';
import { writeResponseHead } from './http2.js';

/** Holds at once, all users together: past it a login is answered 503 `SG_ERR_LOGIN_HOLDS_FULL`. */
export const MAX_HELD_LOGINS = 1_000;
/** Bytes of held responses (bodies and headers) at once: past it, the same 503. */
export const MAX_HELD_BYTES = 32 * 1024 * 1024;
/** Holds of one user: a newer login drops that user's oldest hold (a user retrying, not a flood). */
export const MAX_HELD_PER_USER = 4;

interface Hold {
  readonly id: string;
  readonly input: LoginInput;
  readonly head: ResponseHead;
  readonly body: Buffer;
  readonly bytes: number;
  readonly expiresAt: number;
  /** The sessions the user was offered (ids). */
  readonly choices: readonly string[];
}

/**
 * Who is asking: a hold answers only the client that made the login (its address, as the proxy reads
 * it, and its User-Agent), so a choice URL that leaks (a log, a shoulder) is of no use elsewhere.
 */
export interface HoldClient {
  readonly ip: string;
  readonly userAgent: string;
}

/** What a choice page may show of a hold. */
export interface HoldView {
  readonly user: string;
  readonly choices: readonly string[];
  readonly expiresAt: number;
}

/** The end of a choice: released (the held response written), or why nothing was. */
export type ChoiceResult = 'released' | 'gone' | 'refused' | 'seat-refused';

export interface HeldLoginsOptions {
  readonly sessions: SessionService;
  /** Milliseconds a login is held (`sessions.askTimeout`). */
  readonly timeout: number;
  /** Epoch-millisecond clock: a hold is gone once it reads past `expiresAt`, timer or not. */
  readonly now: () => number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Add `Sessiongate-Ended-Sessions` to the released response (`notify.loginHeader`). */
  readonly loginHeader: boolean;
  /** Bounds; the constants above by default. */
  readonly maxHolds?: number;
  readonly maxBytes?: number;
  readonly maxPerUser?: number;
}

export class HeldLogins {
  readonly #holds = new Map<string, Hold>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #byUser = new Map<string, string[]>();
  #bytes = 0;
  readonly #o: HeldLoginsOptions;
  readonly #maxHolds: number;
  readonly #maxBytes: number;
  readonly #maxPerUser: number;

  constructor(options: HeldLoginsOptions) {
    this.#o = options;
    this.#maxHolds = options.maxHolds ?? MAX_HELD_LOGINS;
    this.#maxBytes = options.maxBytes ?? MAX_HELD_BYTES;
    this.#maxPerUser = options.maxPerUser ?? MAX_HELD_PER_USER;
  }

  get size(): number {
    return this.#holds.size;
  }

  /**
   * Holds a login the limit refused; its one-time id, or undefined when the bounds leave no room (the
   * caller answers 503). The user's oldest hold goes first when they have `maxPerUser` already.
   */
  hold(
    input: LoginInput,
    head: ResponseHead,
    body: Buffer,
    choices: readonly string[],
  ): { id: string; expiresAt: number } | undefined {
    let bytes = body.length;
    for (const h of head.headers) bytes += h.length;
    const mine = this.#byUser.get(input.user) ?? [];
    if (mine.length >= this.#maxPerUser) this.#drop(mine[0] as string, 'dropped');
    if (this.#holds.size >= this.#maxHolds || this.#bytes + bytes > this.#maxBytes) {
      this.#count('full');
      this.#o.logger.warn(
        { code: 'SG_ERR_LOGIN_HOLDS_FULL', holds: this.#holds.size, bytes: this.#bytes },
        'no room to hold a login for the user to choose (onLimit: ask): refused',
      );
      return undefined;
    }
    const id = randomBytes(24).toString('base64url');
    const expiresAt = this.#o.now() + this.#o.timeout;
    this.#insert({ id, input, head, body, bytes, expiresAt, choices });
    this.#count('held');
    this.#o.logger.info(
      { event: 'login_held', choices: choices.length },
      'login held for the user to choose',
    );
    return { id, expiresAt };
  }

  /** The hold's user and the sessions offered, while it waits. */
  view(id: string, client: HoldClient): HoldView | undefined {
    const h = this.#mine(id, client);
    return h && { user: h.input.user, choices: h.choices, expiresAt: h.expiresAt };
  }

  /** Drops the hold: nothing is released, the held token never registered. False if it was gone. */
  cancel(id: string, client: HoldClient): boolean {
    if (this.#mine(id, client) === undefined) return false;
    this.#drop(id, 'cancelled');
    return true;
  }

  /**
   * The user's choice: takes the hold (one time), ends `sessionId` and registers the held login in one
   * compare-and-set, then writes the held response to `res` exactly as the app sent it. A session id not
   * among the user's live sessions ends nothing; the login is then refused unless there is room anyway.
   * Throws StoreUnavailableError; the hold is back then, for another try until its timeout.
   */
  async choose(
    id: string,
    sessionId: string,
    res: ServerResponse,
    client: HoldClient,
  ): Promise<ChoiceResult> {
    const h = this.#mine(id, client);
    if (h === undefined) return 'gone';
    this.#remove(h);
    let outcome;
    try {
      outcome = await this.#o.sessions.login({ ...h.input, chosenSessionId: sessionId });
    } catch (err) {
      // Nothing was committed: the choice can be made again.
      if (err instanceof StoreUnavailableError && this.#o.now() < h.expiresAt) this.#insert(h);
      throw err;
    }
    if (outcome.kind === 'refused' || outcome.kind === 'choose') {
      this.#count('refused');
      this.#o.metrics.logins.refused.inc();
      return outcome.kind === 'refused' && outcome.reason === 'seat-limit' ? 'seat-refused' : 'refused';
    }
    this.#count('chosen');
    this.#o.metrics.logins[outcome.kind].inc();
    this.#o.logger.info({ event: 'login_hold_chosen' }, 'held login released after the user chose');
    const ended =
      outcome.kind === 'created' ? outcome.ended.filter((s) => s.state === 'superseded').length : 0;
    if (res.destroyed) return 'released';
    const headers = this.#o.loginHeader
      ? [...h.head.headers, 'sessiongate-ended-sessions', String(ended)]
      : h.head.headers;
    writeResponseHead(res, h.head.status, h.head.statusText, headers);
    res.end(h.body);
    return 'released';
  }

  /** Drops every hold (shutdown). */
  close(): void {
    for (const h of [...this.#holds.values()]) this.#remove(h);
  }

  /** The hold, if it waits and `client` made its login; another client is told it is gone, and it stays. */
  #mine(id: string, client: HoldClient): Hold | undefined {
    const h = this.#live(id);
    if (h === undefined) return undefined;
    if (h.input.ip === client.ip && h.input.userAgent === client.userAgent) return h;
    this.#o.logger.warn(
      { code: 'SG_ERR_LOGIN_HOLD_GONE', reason: 'another client', ip: client.ip },
      'a held login asked for by a client other than the one that made it: refused',
    );
    return undefined;
  }

  #live(id: string): Hold | undefined {
    const h = this.#holds.get(id);
    if (h === undefined) return undefined;
    if (this.#o.now() < h.expiresAt) return h;
    this.#drop(id, 'expired');
    return undefined;
  }

  #drop(id: string, why: HeldLoginOutcome): void {
    const h = this.#holds.get(id);
    if (h === undefined) return;
    this.#remove(h);
    this.#count(why);
    this.#o.logger.info({ event: 'login_hold_ended', outcome: why }, `held login ${why}: nothing released`);
  }

  #insert(h: Hold): void {
    // Frees the memory at the timeout; the clock check in #live decides, so an injected clock rules.
    const timer = setTimeout(() => this.#drop(h.id, 'expired'), Math.max(0, h.expiresAt - this.#o.now()));
    timer.unref();
    this.#timers.set(h.id, timer);
    this.#holds.set(h.id, h);
    this.#byUser.set(h.input.user, [...(this.#byUser.get(h.input.user) ?? []), h.id]);
    this.#bytes += h.bytes;
  }

  #remove(h: Hold): void {
    if (!this.#holds.delete(h.id)) return;
    clearTimeout(this.#timers.get(h.id));
    this.#timers.delete(h.id);
    this.#bytes -= h.bytes;
    const left = (this.#byUser.get(h.input.user) ?? []).filter((x) => x !== h.id);
    if (left.length > 0) this.#byUser.set(h.input.user, left);
    else this.#byUser.delete(h.input.user);
  }

  #count(outcome: HeldLoginOutcome): void {
    this.#o.metrics.heldLogins[outcome].inc();
  }
}
