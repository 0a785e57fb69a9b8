import type { EndState, SessionRecord } from '../model.js';

export interface LimitPolicyConfig {
  readonly limit: number;
  readonly onLimit: 'replace-oldest' | 'reject-new';
  readonly idleTimeout: number;
}

export interface NewLogin {
  /** The live session of the same user that the login request carried a token of (re-login), if any. */
  readonly replacesSessionId?: string;
  readonly at: number;
}

export type LimitDecision =
  | { readonly kind: 'admit'; readonly end: readonly { sessionId: string; state: EndState }[] }
  | { readonly kind: 'refuse'; readonly live: number };

/**
 * The limit policy: a pure function of (the user's live sessions, the new login, config) to "end these"
 * or "refuse". The store applies the decision atomically (compare-and-set on the user's version).
 *
 * - A session idle past `idleTimeout` is already dead: it is ended as `expired` and never counts, so a
 *   forgotten session cannot lock a user out under `reject-new`.
 * - A re-login (the request carried a live token of the same user) replaces that session: it never
 *   counts toward the limit, `reject-new` never refuses it, and the new session never evicts itself.
 * - Otherwise the oldest sessions (by creation) beyond the limit are superseded, or the login refused.
 */
export function decideLogin(
  live: readonly SessionRecord[],
  login: NewLogin,
  config: LimitPolicyConfig,
): LimitDecision {
  const end: { sessionId: string; state: EndState }[] = [];
  const counted: SessionRecord[] = [];
  for (const s of live) {
    if (login.at - s.lastSeenAt >= config.idleTimeout || login.at >= s.expiresAt)
      end.push({ sessionId: s.id, state: 'expired' });
    else if (s.id === login.replacesSessionId) end.push({ sessionId: s.id, state: 'superseded' });
    else counted.push(s);
  }
  const replacing =
    login.replacesSessionId !== undefined && end.some((e) => e.sessionId === login.replacesSessionId);
  const excess = counted.length + 1 - config.limit;
  if (excess <= 0) return { kind: 'admit', end };
  if (config.onLimit === 'reject-new' && !replacing) return { kind: 'refuse', live: counted.length };
  // replace-oldest, or a re-login under reject-new with a limit lowered since: the oldest go.
  const oldestFirst = [...counted].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  for (const s of oldestFirst.slice(0, excess)) end.push({ sessionId: s.id, state: 'superseded' });
  return { kind: 'admit', end };
}
