/**
 * Long-lived connections (upgraded sockets, streamed responses) by token id, so a revocation closes them
 * (the check runs once, when they open). Revocations arrive from this replica and from the invalidation
 * channel, both as token ids.
 */
export interface LongLivedConnection {
  readonly kind: 'websocket' | 'stream';
  /** Closes the connection with the reason code (e.g. `session_superseded`). */
  close(code: string): void;
}

export class ConnectionRegistry {
  readonly #byToken = new Map<string, Set<LongLivedConnection>>();

  get size(): number {
    let n = 0;
    for (const s of this.#byToken.values()) n += s.size;
    return n;
  }

  add(tokenId: string, conn: LongLivedConnection): () => void {
    let set = this.#byToken.get(tokenId);
    if (!set) {
      set = new Set();
      this.#byToken.set(tokenId, set);
    }
    set.add(conn);
    return () => {
      const s = this.#byToken.get(tokenId);
      if (!s) return;
      s.delete(conn);
      if (s.size === 0) this.#byToken.delete(tokenId);
    };
  }

  has(tokenId: string): boolean {
    return this.#byToken.has(tokenId);
  }

  /** Token ids with open connections (to re-check after the invalidation channel was lost). */
  tokenIds(): string[] {
    return [...this.#byToken.keys()];
  }

  /** Closes every connection of these tokens; returns them. */
  close(tokenIds: readonly string[], code: (tokenId: string) => string): LongLivedConnection[] {
    const closed: LongLivedConnection[] = [];
    for (const id of tokenIds) {
      const set = this.#byToken.get(id);
      if (!set) continue;
      this.#byToken.delete(id);
      for (const c of set) {
        c.close(code(id));
        closed.push(c);
      }
    }
    return closed;
  }
}
