// PMMC acceptor (van Renesse & Altinbuken, section 3, fig. 4), keeping per
// slot only the pvalue of the highest ballot it accepted (section 4's
// optimization). Every promise and accept is persisted in the same step as
// the reply it justifies; the runtime writes it (synced) before the reply leaves.
//
// Invariants: `promised` never decreases; every accepted pvalue's ballot is at
// most `promised`; nothing is kept below `compactedBelow` (those slots are
// decided and covered by the co-located replica's snapshot).
import { assert } from '../core/assert.js';
import { BOTTOM_BALLOT, type Ballot, compareBallots, type Slot, slot } from '../core/ids.js';
import { del, indexKey, put, type StorageWrite, type StoredState, space } from '../core/storage.js';
import { mark } from '../core/marks.js';
import { records } from './codec.js';
import type { PValue } from './messages.js';

export const ACCEPTOR_SPACE = 'acceptor';
export const ACCEPTED_SPACE = 'accepted';
const PROMISED_KEY = 'promised';

export class Acceptor {
  private promised: Ballot = BOTTOM_BALLOT;
  private readonly accepted = new Map<Slot, PValue>();
  private compactedBelow = slot(0);

  constructor(
    private readonly persist: (...writes: StorageWrite[]) => void,
    stored: StoredState,
  ) {
    const p = space(stored, ACCEPTOR_SPACE).get(PROMISED_KEY);
    if (p !== undefined) this.promised = records.decodeBallot(p);
    for (const bytes of space(stored, ACCEPTED_SPACE).values()) {
      const pv = records.decodePValue(bytes);
      this.accepted.set(pv.slot, pv);
    }
  }

  get ballot(): Ballot {
    return this.promised;
  }

  /** Phase 1: promise `b` if it is the highest seen; answer with everything accepted from `fromSlot` on. */
  onP1a(b: Ballot, fromSlot: Slot): { ballot: Ballot; accepted: PValue[]; compactedBelow: Slot } {
    this.raise(b);
    const accepted: PValue[] = [];
    for (const pv of this.accepted.values()) if (pv.slot >= fromSlot) accepted.push(pv);
    return { ballot: this.promised, accepted, compactedBelow: this.compactedBelow };
  }

  /**
   * Phase 2: accept unless promised to a higher ballot; answers with the
   * ballot it holds, or nothing for a compacted slot (decided long ago: the
   * proposer learns it by catching up, not from this vote).
   */
  onP2a(pv: PValue): Ballot | undefined {
    if (pv.slot < this.compactedBelow) {
      mark('acceptor ignores a compacted slot');
      return undefined;
    }
    if (compareBallots(pv.ballot, this.promised) >= 0) {
      this.raise(pv.ballot);
      this.accepted.set(pv.slot, pv);
      this.persist(put(ACCEPTED_SPACE, indexKey(pv.slot), records.encodePValue(pv)));
    }
    return this.promised;
  }

  /**
   * Drops what the replica's snapshot covers: every slot below `below` is
   * decided. Also called at start with the snapshot's slot, which is where
   * the bound lives durably.
   */
  compact(below: Slot): void {
    if (below <= this.compactedBelow) return;
    for (const s of this.accepted.keys()) {
      if (s >= below) continue;
      this.accepted.delete(s);
      this.persist(del(ACCEPTED_SPACE, indexKey(s)));
    }
    this.compactedBelow = below;
  }

  acceptedCount(): number {
    return this.accepted.size;
  }

  checkInvariants(): void {
    for (const pv of this.accepted.values()) {
      assert(compareBallots(pv.ballot, this.promised) <= 0, 'accepted a ballot above the promise');
      assert(pv.slot >= this.compactedBelow, 'kept a compacted slot');
    }
  }

  private raise(b: Ballot): void {
    if (compareBallots(b, this.promised) <= 0) return;
    this.promised = b;
    this.persist(put(ACCEPTOR_SPACE, PROMISED_KEY, records.encodeBallot(b)));
  }
}
