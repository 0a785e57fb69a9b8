import type { EndState, SessionRecord } from '../model.js';
import { deviceClass, type DeviceClass } from './device.js';

export type OnLimit = 'replace-oldest' | 'replace-least-recent' | 'reject-new' | 'ask' | 'warn';

/**
 * Why a limit ended a session or refused a login (audit events, `sessiongate_policy_outcomes_total`):
 * the user's limit, their group's, their device class's, their tenant's seats, a session idle past
 * `reclaimIdleAfter` whose slot a new login needed, or the user's own choice (`onLimit: ask`).
 */
export type PolicyReason =
  'limit' | 'group-limit' | 'device-limit' | 'seat-limit' | 'idle-reclaimed' | 'chosen-by-user';

/** Why a session ends at a login: a policy reason, past its time (`expired`), or this browser's re-login. */
export type EndReason = PolicyReason | 'expired' | 'replaced';

export interface LimitPolicyConfig {
  /** The limit of a user without a group limit. */
  readonly limit: number;
  readonly onLimit: OnLimit;
  readonly idleTimeout: number;
  /**
   * A session idle this long no longer holds a slot: when a new login needs one, it is ended as
   * `expired` (reason `idle-reclaimed`) before any other is superseded or the login refused.
   */
  readonly reclaimIdleAfter?: number | undefined;
  /** Live sessions per device class, inside the user's limit; a class not named has no limit of its own. */
  readonly devices?: Readonly<Partial<Record<DeviceClass, number>>> | undefined;
}

export interface NewLogin {
  /** The live session of the same user that the login request carried a token of (re-login), if any. */
  readonly replacesSessionId?: string;
  readonly at: number;
  /** The session this login creates: never a victim, whatever a snapshot says. */
  readonly sessionId?: string;
  /** The user's own limit (the smallest of their groups'), when it is not `config.limit`. */
  readonly groupLimit?: number;
  /** The device class of the login's User-Agent, for `config.devices`. */
  readonly device?: DeviceClass;
  /** An exempt user (service account): never counted, never ended by a limit. */
  readonly exempt?: boolean;
  /**
   * `onLimit: ask`: the live session the user chose to end for this login. It is superseded (reason
   * `chosen-by-user`) and frees its slot before anything else is decided; an id that is not one of the
   * user's live sessions frees nothing.
   */
  readonly chosenSessionId?: string;
}

export interface PolicyEnd {
  readonly sessionId: string;
  readonly state: EndState;
  readonly reason: EndReason;
}

/** `onLimit: warn`: the login is past a limit; these live sessions are warned instead of ended. */
export interface PolicyWarn {
  readonly sessionIds: readonly string[];
  /** The first limit the login went past. */
  readonly reason: PolicyReason;
}

export type LimitDecision =
  | { readonly kind: 'admit'; readonly end: readonly PolicyEnd[]; readonly warn?: PolicyWarn }
  | { readonly kind: 'refuse'; readonly live: number; readonly reason: PolicyReason };

const byCreation = (a: SessionRecord, b: SessionRecord): number =>
  a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const byActivity = (a: SessionRecord, b: SessionRecord): number =>
  a.lastSeenAt - b.lastSeenAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * The limit policy: a pure function of (the user's live sessions, the new login, config) to "end these"
 * or "refuse". The store applies the decision atomically (compare-and-set on the user's version).
 *
 * - A session idle past `idleTimeout` (or past its maxAge) is already dead: it is ended as `expired`
 *   and never counts, so a forgotten session cannot lock a user out under `reject-new`.
 * - A re-login (the request carried a live token of the same user) replaces that session: it never
 *   counts toward the limit, `reject-new` never refuses it, and the new session never evicts itself.
 * - An exempt user's sessions are never counted: only the dead ones end.
 * - A device class over its own limit frees a slot of that class first (a second phone ends the first
 *   phone, never the desktop); then the user's limit (their group's, else the default) applies.
 * - A slot is freed by reclaiming a session idle past `reclaimIdleAfter` (the most idle first), else by
 *   superseding the oldest by creation (`replace-oldest`) or by last activity (`replace-least-recent`),
 *   ties broken by session id; `reject-new` refuses instead, unless the login is a re-login; `ask`
 *   refuses too, naming the sessions to choose from, and the login the user then makes with
 *   `chosenSessionId` ends that one first; `warn` admits the login, ends nothing for the limit (idle
 *   sessions are still reclaimed first) and names every other counted session to warn.
 */
export function decideLogin(
  live: readonly SessionRecord[],
  login: NewLogin,
  config: LimitPolicyConfig,
): LimitDecision {
  const end: PolicyEnd[] = [];
  const counted: SessionRecord[] = [];
  for (const s of live) {
    if (s.id === login.sessionId) continue;
    if (login.at - s.lastSeenAt >= config.idleTimeout || login.at >= s.expiresAt)
      end.push({ sessionId: s.id, state: 'expired', reason: 'expired' });
    else if (s.id === login.replacesSessionId)
      end.push({ sessionId: s.id, state: 'superseded', reason: 'replaced' });
    else if (s.id === login.chosenSessionId && login.exempt !== true)
      end.push({ sessionId: s.id, state: 'superseded', reason: 'chosen-by-user' });
    else counted.push(s);
  }
  if (login.exempt === true) return { kind: 'admit', end };
  const replacing =
    login.replacesSessionId !== undefined && end.some((e) => e.sessionId === login.replacesSessionId);
  const ending = new Set<string>();
  const reclaimAfter = config.reclaimIdleAfter;
  let over: PolicyReason | undefined;

  /** Frees `excess` slots among `pool`; false when reject-new refuses instead. */
  const free = (pool: readonly SessionRecord[], excess: number, reason: PolicyReason): boolean => {
    let left = excess;
    const open = pool.filter((s) => !ending.has(s.id));
    if (reclaimAfter !== undefined) {
      for (const s of [...open].sort(byActivity)) {
        if (left === 0) break;
        if (login.at - s.lastSeenAt < reclaimAfter) break;
        ending.add(s.id);
        end.push({ sessionId: s.id, state: 'expired', reason: 'idle-reclaimed' });
        left--;
      }
    }
    if (left === 0) return true;
    if (config.onLimit === 'warn') {
      over ??= reason;
      return true;
    }
    if ((config.onLimit === 'reject-new' || config.onLimit === 'ask') && !replacing) return false;
    // replace-*, or a re-login under reject-new/ask with a limit lowered since: the oldest go.
    const order = config.onLimit === 'replace-least-recent' ? byActivity : byCreation;
    for (const s of open.filter((x) => !ending.has(x.id)).sort(order)) {
      if (left === 0) break;
      ending.add(s.id);
      end.push({ sessionId: s.id, state: 'superseded', reason });
      left--;
    }
    return true;
  };

  const classLimit = login.device !== undefined ? config.devices?.[login.device] : undefined;
  if (classLimit !== undefined) {
    const same = counted.filter((s) => deviceClass(s.userAgent) === login.device);
    const excess = same.length + 1 - classLimit;
    if (excess > 0 && !free(same, excess, 'device-limit'))
      return { kind: 'refuse', live: counted.length, reason: 'device-limit' };
  }
  const limit = login.groupLimit ?? config.limit;
  const reason: PolicyReason = login.groupLimit !== undefined ? 'group-limit' : 'limit';
  const excess = counted.length - ending.size + 1 - limit;
  if (excess > 0 && !free(counted, excess, reason)) return { kind: 'refuse', live: counted.length, reason };
  if (over === undefined) return { kind: 'admit', end };
  const warned = counted.filter((s) => !ending.has(s.id)).map((s) => s.id);
  return { kind: 'admit', end, warn: { sessionIds: warned, reason: over } };
}
