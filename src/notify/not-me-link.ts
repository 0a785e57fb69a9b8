/**
 * The "not me" link of a new-login notification: `<baseUrl><prefix>not-me/<token>`, on the proxied
 * origin, naming the user and the new login's session, expiring, signed (HMAC-SHA256 with a key derived
 * from `secret`, so every replica issues and accepts the same links). Single use is the page's business
 * (ui/not-me.ts marks the link's `id` used in the store); this module only issues and reads.
 *
 * Token: `v1.<base64url JSON [user, sessionId, expiresAt]>.<base64url MAC>`. The payload is readable
 * (the user's own name and a session id, sent to that user): it is signed, not secret.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { NotMeLinkRead } from '../model.js';
import type { SessionEvent } from '../sessions/events.js';

export interface NotMeLink {
  readonly url: string;
  /** Epoch milliseconds. */
  readonly expiresAt: number;
}

export interface NotMeLinks {
  /** A link for this user's session, valid for `ttl` from now. */
  issue(user: string, sessionId: string): NotMeLink;
  /** The link of a new-login event (the new login's session), or undefined for other events. */
  forEvent(event: SessionEvent): NotMeLink | undefined;
  /** Reads a token (the path segment after `not-me/`); never throws. */
  read(token: string): NotMeLinkRead;
}

export interface NotMeLinkOptions {
  /** The gateway's `secret`; the link key is derived from it. */
  readonly secret: string;
  /** `notify.baseUrl`: the origin users reach the app at (never a request's Host). */
  readonly baseUrl: string;
  /** The self-service prefix (`/.sessiongate/`). */
  readonly prefix: string;
  /** Milliseconds a link works (`notify.notMe.ttl`). */
  readonly ttl: number;
  readonly now: () => number;
}

/** A token longer than this is not one of ours (a user name is capped well below by every app). */
const MAX_TOKEN = 4096;
const FORGED: NotMeLinkRead = Object.freeze({ kind: 'forged' });

/** The path under the prefix where the links point. */
export const NOT_ME_PATH = 'not-me/';

/**
 * The session a new-login event is about: the new login's own (`session.created`, `session.new_device`),
 * or the one that ended or warned this one (`session.superseded`, `session.warned`: `by`).
 */
function newLoginSessionOf(e: SessionEvent): string | undefined {
  switch (e.type) {
    case 'session.created':
    case 'session.new_device':
      return e.sessionId;
    case 'session.superseded':
    case 'session.warned':
      return e.by?.sessionId;
    default:
      return undefined;
  }
}

export function createNotMeLinks(o: NotMeLinkOptions): NotMeLinks {
  const key = createHmac('sha256', o.secret).update('sessiongate:not-me-link').digest();
  const base = `${o.baseUrl}${o.prefix}${NOT_ME_PATH}`;
  const macOf = (payload: string): Buffer => createHmac('sha256', key).update(`v1.${payload}`).digest();

  const issue = (user: string, sessionId: string): NotMeLink => {
    const expiresAt = o.now() + o.ttl;
    const payload = Buffer.from(JSON.stringify([user, sessionId, expiresAt])).toString('base64url');
    return { url: `${base}v1.${payload}.${macOf(payload).toString('base64url')}`, expiresAt };
  };

  return {
    issue,
    forEvent(e) {
      const sessionId = newLoginSessionOf(e);
      return sessionId === undefined ? undefined : issue(e.user, sessionId);
    },
    read(token) {
      if (token.length > MAX_TOKEN) return FORGED;
      const parts = token.split('.');
      if (parts.length !== 3 || parts[0] !== 'v1') return FORGED;
      const payload = parts[1] as string;
      const presented = Buffer.from(parts[2] as string, 'base64url');
      const expected = macOf(payload);
      if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return FORGED;
      let fields: unknown;
      try {
        fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
      } catch {
        return FORGED;
      }
      // Signed by us, so well-formed; checked anyway, as a key shared with an older format could differ.
      if (!Array.isArray(fields) || fields.length !== 3) return FORGED;
      const [user, sessionId, expiresAt] = fields as unknown[];
      if (typeof user !== 'string' || typeof sessionId !== 'string' || typeof expiresAt !== 'number')
        return FORGED;
      const kind = o.now() < expiresAt ? 'valid' : 'expired';
      return { kind, user, sessionId, expiresAt, id: expected.toString('base64url') };
    },
  };
}
