import type { EndState, Geo } from '../model.js';
import type { PolicyReason } from './policy.js';

export type SessionEventType =
  | 'session.created'
  | 'session.superseded'
  | 'session.replaced'
  | 'session.refused'
  | 'session.ended'
  | 'session.logged_out'
  | 'session.expired'
  | 'request.rejected'
  | 'session.fixation_risk'
  | 'session.new_device'
  | 'session.not_me'
  | 'session.warned';

/** One audit-worthy event. Never carries a raw token; user is the account name the config extracts. */
export interface SessionEvent {
  readonly type: SessionEventType;
  /** Epoch milliseconds. */
  readonly at: number;
  readonly user: string;
  readonly sessionId?: string;
  readonly ip?: string;
  readonly userAgent?: string;
  readonly location?: string;
  /** Where the client address is, from `geo.database` (unset for private addresses or without one). */
  readonly geo?: Geo;
  /**
   * For session.created and session.new_device: the login's device (browser family, OS, device class)
   * or country is not in the user's recent history (never set on a user's first login).
   */
  readonly newDevice?: true;
  readonly newLocation?: true;
  /** Why (the end state, or the rejection code). */
  readonly reason?: EndState | string;
  /** For superseded/ended: the session that caused it, and its client. */
  readonly by?: {
    readonly sessionId?: string;
    readonly ip?: string;
    readonly userAgent?: string;
    readonly actor?: 'user' | 'admin' | 'login';
  };
  /**
   * A limit policy's reason (sessions ended at a login, refused logins): `limit`, `group-limit`,
   * `device-limit`, `seat-limit`, `idle-reclaimed`, `chosen-by-user`.
   */
  readonly policy?: PolicyReason;
  /** For session.created: how many sessions of other devices the login ended. */
  readonly ended?: number;
  /** For session.fixation_risk: the login rule (`login[0]`) that judged it. */
  readonly rule?: string;
  /** For request.rejected under `mode: report-only`: the request was passed, not refused. */
  readonly reportOnly?: true;
}

export type SessionEventListener = (event: SessionEvent) => void;

/** A small synchronous event bus; a throwing listener never breaks the session service. */
export class SessionEvents {
  readonly #listeners = new Set<SessionEventListener>();
  #onListenerError: (err: unknown) => void = () => {};

  on(listener: SessionEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onListenerError(handler: (err: unknown) => void): void {
    this.#onListenerError = handler;
  }

  emit(event: SessionEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch (err) {
        this.#onListenerError(err);
      }
    }
  }
}

/**
 * The event of a session ended by a login from the same browser (logging in again, step-up): stored
 * as superseded, but no other device was signed out, so it is not reported as `session.superseded`
 * (which the webhook and the login header treat as "another device signed out").
 */
export const REPLACED_EVENT: SessionEventType = 'session.replaced';

export const END_EVENT: Readonly<Record<EndState, SessionEventType>> = {
  superseded: 'session.superseded',
  logged_out: 'session.logged_out',
  expired: 'session.expired',
  ended_by_user: 'session.ended',
  ended_by_admin: 'session.ended',
};
