import type { LoginHistoryEntry } from '../model.js';
import type { LoginHistoryStore } from './contract.js';

interface UserHistory {
  /** Pair key (`device\ncountry`) -> entry; insertion order is not age order (a pair moves). */
  readonly entries: Map<string, LoginHistoryEntry>;
  /** When the whole history is forgotten: the newest entry's at + window. */
  expiresAt: number;
}

/** Login history of the memory store: one map per user, swept with the store's records. */
export class MemoryHistory implements LoginHistoryStore {
  readonly #users = new Map<string, UserHistory>();

  read(user: string, since: number): Promise<LoginHistoryEntry[]> {
    const h = this.#users.get(user);
    const out = h ? [...h.entries.values()].filter((e) => e.at > since) : [];
    return Promise.resolve(out.sort((a, b) => b.at - a.at));
  }

  record(
    user: string,
    entry: LoginHistoryEntry,
    bounds: { readonly max: number; readonly window: number },
  ): Promise<void> {
    const h = this.#users.get(user) ?? { entries: new Map<string, LoginHistoryEntry>(), expiresAt: 0 };
    h.entries.set(`${entry.device}\n${entry.country ?? ''}`, entry);
    const horizon = entry.at - bounds.window;
    const kept = [...h.entries].filter(([, e]) => e.at > horizon).sort(([, a], [, b]) => b.at - a.at);
    h.entries.clear();
    for (const [k, e] of kept.slice(0, bounds.max)) h.entries.set(k, e);
    h.expiresAt = Math.max(h.expiresAt, entry.at + bounds.window);
    this.#users.set(user, h);
    return Promise.resolve();
  }

  /** Forgets the histories whose window is over (memory stays bounded by the users of the window). */
  sweep(now: number): void {
    for (const [user, h] of this.#users) if (h.expiresAt <= now) this.#users.delete(user);
  }

  /** Users with a history (for tests). */
  size(): number {
    return this.#users.size;
  }
}
