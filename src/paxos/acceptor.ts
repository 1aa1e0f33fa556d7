// PMMC acceptor (van Renesse & Altinbuken, section 3, fig. 4), keeping per
// slot only the pvalue of the highest ballot it accepted (section 4's
// optimization). Every promise and accept is persisted in the same step as
// the reply it justifies; the runtime writes it (synced) before the reply leaves.
//
// Memory holds only which slots hold a value and its ballot; the values stay
// on disk (DESIGN.md 3) and are read back for a P1b.
//
// Invariants: `promised` never decreases; every accepted pvalue's ballot is at
// most `promised`; nothing is kept below `compactedBelow` (those slots are
// decided and applied by the co-located replica), and that bound is durable
// no later than the deletes it justifies: reporting a lower one after a
// restart would let a new leader fill decided slots with no-ops.
//
// An acceptor that lost its disk starts rebuilding (a durable marker): it
// answers no P1a and no P2a, since it may have promised or accepted anything
// before, until rejoin.ts has fenced those ballots off and its replica has
// applied every slot it may have voted on.
import { assert } from '../core/assert.js';
import { BOTTOM_BALLOT, type Ballot, compareBallots, type Slot, slot } from '../core/ids.js';
import { del, indexKey, put, type StorageWrite, StorageCorruptionError, type StoredState, space } from '../core/storage.js';
import { mark } from '../core/marks.js';
import { batchBytes, records } from './codec.js';
import type { Batch, PaxosMessage, PValue } from './messages.js';

export const ACCEPTOR_SPACE = 'acceptor';
/** slot -> the accepted pvalue. Read by point only. */
export const ACCEPTED_SPACE = 'accepted';
const PROMISED_KEY = 'promised';
const COMPACTED_KEY = 'compacted';
/** Present while the acceptor is rebuilding after a disk loss. */
const REBUILDING_KEY = 'rebuilding';
const MARKER = new Uint8Array([1]);
/** slot -> ballot of the value accepted there: the in-memory index, kept in ACCEPTOR_SPACE. */
const INDEX_PREFIX = 's/';

export interface AcceptorPorts {
  persist(...writes: StorageWrite[]): void;
  persistUnsynced(...writes: StorageWrite[]): void;
  read(space: string, key: string): Uint8Array | undefined;
}

export class Acceptor {
  private promised: Ballot = BOTTOM_BALLOT;
  /** Slots holding an accepted value, with its ballot. */
  private readonly accepted = new Map<Slot, Ballot>();
  private compactedBelow = slot(0);
  private rebuildingNow = false;

  /** `rebuild`: this node lost its disk; honoured only on a store that holds no acceptor state yet. */
  constructor(
    private readonly ports: AcceptorPorts,
    stored: StoredState,
    rebuild = false,
  ) {
    const kept = space(stored, ACCEPTOR_SPACE);
    for (const [key, bytes] of kept) {
      if (key === PROMISED_KEY) this.promised = records.decodeBallot(bytes);
      else if (key === COMPACTED_KEY) this.compactedBelow = records.decodeCompactedBelow(bytes);
      else if (key === REBUILDING_KEY) this.rebuildingNow = true;
      else {
        assert(key.startsWith(INDEX_PREFIX), `unexpected acceptor key ${JSON.stringify(key)}`);
        this.accepted.set(slot(parseInt(key.slice(INDEX_PREFIX.length), 16)), records.decodeBallot(bytes));
      }
    }
    for (const s of this.accepted.keys()) assert(s >= this.compactedBelow, 'acceptor kept a compacted slot');
    if (rebuild && kept.size === 0) {
      mark('acceptor starts rebuilding');
      this.rebuildingNow = true;
      this.ports.persist(put(ACCEPTOR_SPACE, REBUILDING_KEY, MARKER));
    }
  }

  /** Lost its disk and may not vote yet. */
  get rebuilding(): boolean {
    return this.rebuildingNow;
  }

  /**
   * A rebuilt peer's fence: promise `b` if it is the highest seen, and give a
   * slot above every one this acceptor holds a value for or compacted.
   */
  onFence(b: Ballot): { ballot: Ballot; bound: Slot } {
    assert(!this.rebuildingNow, 'a rebuilding acceptor answered a fence');
    this.raise(b);
    let bound = this.compactedBelow;
    for (const s of this.accepted.keys()) if (s >= bound) bound = slot(s + 1);
    return { ballot: this.promised, bound };
  }

  /** Votes again, promised to `fence` (rejoin.ts says when). */
  finishRebuild(fence: Ballot): void {
    assert(this.rebuildingNow, 'finished a rebuild that was not running');
    this.rebuildingNow = false;
    if (compareBallots(fence, this.promised) > 0) this.promised = fence;
    this.ports.persist(put(ACCEPTOR_SPACE, PROMISED_KEY, records.encodeBallot(this.promised)), del(ACCEPTOR_SPACE, REBUILDING_KEY));
  }

  get ballot(): Ballot {
    return this.promised;
  }

  /**
   * Phase 1: promise `b` if it is the highest seen; answer with what was
   * accepted from `fromSlot` on, in slot order, up to `maxBytes` of batches
   * (at least one value goes): `next` is where the scout asks again.
   */
  onP1a(b: Ballot, fromSlot: Slot, maxBytes: number): Omit<Extract<PaxosMessage, { type: 'P1b' }>, 'type'> {
    assert(!this.rebuildingNow, 'a rebuilding acceptor answered a P1a');
    this.raise(b);
    const slots = [...this.accepted.keys()].filter((s) => s >= fromSlot).sort((x, y) => x - y);
    const accepted: PValue[] = [];
    let bytes = 0;
    let next: Slot | undefined;
    for (const s of slots) {
      const pv = this.value(s);
      bytes += batchBytes(pv.batch);
      if (accepted.length > 0 && bytes > maxBytes) {
        next = s;
        break;
      }
      accepted.push(pv);
    }
    if (next !== undefined) mark('acceptor cuts a P1b at its byte bound');
    return { ballot: this.promised, fromSlot, accepted, next, compactedBelow: this.compactedBelow };
  }

  /**
   * Phase 2: accept unless promised to a higher ballot; answers with the
   * ballot it holds, or nothing for a compacted slot (decided long ago: the
   * proposer learns it by catching up, not from this vote).
   */
  onP2a(pv: PValue): Ballot | undefined {
    assert(!this.rebuildingNow, 'a rebuilding acceptor answered a P2a');
    if (pv.slot < this.compactedBelow) {
      mark('acceptor ignores a compacted slot');
      return undefined;
    }
    const held = this.accepted.get(pv.slot);
    if (held !== undefined && compareBallots(held, pv.ballot) === 0) {
      // A retransmitted P2a: the value is on disk already (a ballot proposes one value per slot).
      mark('acceptor answers a repeated P2a without writing');
      return this.promised;
    }
    if (compareBallots(pv.ballot, this.promised) >= 0) {
      this.raise(pv.ballot);
      this.accepted.set(pv.slot, pv.ballot);
      this.ports.persist(
        put(ACCEPTED_SPACE, indexKey(pv.slot), records.encodePValue(pv)),
        put(ACCEPTOR_SPACE, INDEX_PREFIX + indexKey(pv.slot), records.encodeBallot(pv.ballot)),
      );
    }
    return this.promised;
  }

  /** Drops what the local replica has applied: every slot below `below` is decided. */
  compact(below: Slot): void {
    if (below <= this.compactedBelow) return;
    const writes: StorageWrite[] = [];
    for (const s of [...this.accepted.keys()]) {
      if (s >= below) continue;
      this.accepted.delete(s);
      writes.push(del(ACCEPTED_SPACE, indexKey(s)), del(ACCEPTOR_SPACE, INDEX_PREFIX + indexKey(s)));
    }
    this.compactedBelow = below;
    // The bound goes in the same atomic write as the deletes it justifies. Unsynced: if a crash loses
    // it, it loses the deletes too, and the acceptor reports the lower bound it still holds values above.
    this.ports.persistUnsynced(put(ACCEPTOR_SPACE, COMPACTED_KEY, records.encodeCompactedBelow(below)), ...writes);
  }

  /**
   * The batch decided for `s` at ballot `b`, when this acceptor holds it: a
   * value it accepted for `s` at `b` or a higher ballot is the chosen one
   * (phase 1 makes every higher ballot propose it again).
   */
  chosenValue(s: Slot, b: Ballot): Batch | undefined {
    const held = this.accepted.get(s);
    if (held === undefined || compareBallots(held, b) < 0) return undefined;
    return this.value(s).batch;
  }

  get compacted(): Slot {
    return this.compactedBelow;
  }

  acceptedCount(): number {
    return this.accepted.size;
  }

  checkInvariants(): void {
    for (const [s, b] of this.accepted) {
      assert(compareBallots(b, this.promised) <= 0, 'accepted a ballot above the promise');
      assert(s >= this.compactedBelow, 'kept a compacted slot');
    }
    if (this.rebuildingNow) assert(this.accepted.size === 0, 'a rebuilding acceptor holds accepted values');
  }

  private value(s: Slot): PValue {
    const bytes = this.ports.read(ACCEPTED_SPACE, indexKey(s));
    // The index says it was written: gone from disk is damage, not a bug.
    if (bytes === undefined) throw new StorageCorruptionError(`the accepted value of slot ${s} is missing`, { space: ACCEPTED_SPACE, key: indexKey(s) });
    const pv = records.decodePValue(bytes);
    assert(pv.slot === s, 'accepted value filed under another slot');
    return pv;
  }

  private raise(b: Ballot): void {
    if (compareBallots(b, this.promised) <= 0) return;
    this.promised = b;
    this.ports.persist(put(ACCEPTOR_SPACE, PROMISED_KEY, records.encodeBallot(b)));
  }
}
