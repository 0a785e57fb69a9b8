import type { SeatClaim, SeatStore } from './contract.js';

interface Seat {
  readonly user: string;
  readonly expiresAt: number;
}

/** Seats of the memory store: one map per tenant; JavaScript runs each call to its end, so it is atomic. */
export class MemorySeats implements SeatStore {
  readonly #tenants = new Map<string, Map<string, Seat>>();

  reserve(claim: SeatClaim): Promise<boolean> {
    const seats = this.#live(claim.tenant, claim.at);
    const keep = new Set(claim.keep);
    let others = 0;
    const mine: string[] = [];
    for (const [id, seat] of seats) {
      if (seat.user === claim.user) {
        if (!keep.has(id) && id !== claim.sessionId) mine.push(id);
      } else others++;
    }
    if (others + keep.size + 1 > claim.max) return Promise.resolve(false);
    for (const id of mine) seats.delete(id);
    seats.set(claim.sessionId, { user: claim.user, expiresAt: claim.expiresAt });
    this.#tenants.set(claim.tenant, seats);
    return Promise.resolve(true);
  }

  release(tenant: string, sessionIds: readonly string[]): Promise<void> {
    const seats = this.#tenants.get(tenant);
    if (seats) {
      for (const id of sessionIds) seats.delete(id);
      if (seats.size === 0) this.#tenants.delete(tenant);
    }
    return Promise.resolve();
  }

  count(tenant: string, at: number): Promise<number> {
    return Promise.resolve(this.#live(tenant, at).size);
  }

  /** The tenant's seats, those past their session's expiresAt dropped (memory stays bounded). */
  #live(tenant: string, at: number): Map<string, Seat> {
    const seats = this.#tenants.get(tenant) ?? new Map<string, Seat>();
    for (const [id, seat] of seats) if (seat.expiresAt <= at) seats.delete(id);
    return seats;
  }
}
