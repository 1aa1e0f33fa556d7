// PMMC replica (section 3, fig. 1), learner side: applies decided batches in
// slot order to the application hosting Paxos. The application's state lives
// on disk (DESIGN.md 3); each applied slot's writes land in the same ready
// batch as the replica's `applied` mark, so state and mark never disagree.
//
// Decisions are logged as they are learned (unsynced: a majority of acceptors
// holds them durably). The log keeps a tail of `logRetainSlots` applied slots
// on disk for lagging peers; older entries are deleted in the batch after the
// state they produced, so a crash never leaves a slot forgotten whose effect
// was lost with it. Memory holds only decided-but-unapplied batches, bounded
// by `maxPendingSlots` and `maxPendingDecisionBytes`. A replica whose peers dropped the log it needs
// receives the state by transfer (paxos-server.ts wires it).
//
// Invariants: compactedBelow <= slotOut; pending holds only slots at or past
// slotOut (before slotOut + maxPendingSlots unless a transfer runs), within
// its count and byte bounds; a slot is applied exactly once, in order.
import { assert } from '../core/assert.js';
import { type Slot, slot } from '../core/ids.js';
import { del, indexKey, put, type StorageWrite } from '../core/storage.js';
import { mark } from '../core/marks.js';
import { batchBytes, type ReplicaMeta, records } from './codec.js';
import type { Batch, DecidedSlot } from './messages.js';

export const LOG_SPACE = 'log';
export const META_SPACE = 'meta';
const META_KEY = 'replica';
/** Log entries deleted in one step at most. */
const COMPACT_MAX_SLOTS = 5000;

export interface ReplicaConfig {
  /** Applied slots whose log entries stay on disk for lagging peers. */
  readonly logRetainSlots: number;
  /** Decided slots beyond the next to apply that are held in memory; later ones are fetched again. */
  readonly maxPendingSlots: number;
  /** Bytes of those held decisions at most. */
  readonly maxPendingDecisionBytes: number;
  /** Bytes of decided commands applied in one step at most (at least one slot): bounds one ready batch. */
  readonly maxApplyBytesPerStep: number;
  /** Decisions in one catch-up reply at most. */
  readonly maxCatchup: number;
  /** Bytes of decisions in one catch-up reply at most (at least one goes). */
  readonly maxCatchupBytes: number;
}

export interface ReplicaPorts {
  persist(...writes: StorageWrite[]): void;
  /** Decisions and applied state are recoverable from a majority: not synced. */
  persistUnsynced(...writes: StorageWrite[]): void;
  read(space: string, key: string): Uint8Array | undefined;
  /** Applies one decided slot's commands to the hosting application. */
  apply(s: Slot, batch: Batch): void;
  /** Held decisions are ready but this step applied its share: call applyReady() again in a later step. */
  moreToApply(): void;
  /** The lowest slot whose log entries a peer may still ask for (a state transfer in progress); Infinity if none. */
  keepLogFrom(): number;
  /** Every decision the first time this replica learns it (for tests' cross-replica checks). */
  learned?(s: Slot, batch: Batch): void;
}

export class Replica {
  private slotOut = slot(0);
  private compactedBelow = slot(0);
  /** Nonzero while a transfer is being received: the stored state is partial, nothing may be applied. */
  private transferId = 0;
  private readonly pending = new Map<Slot, Batch>();
  private pendingBytes = 0;
  /**
   * Decided slots not yet applied whose batch is in the log on disk only (the
   * memory bound was reached). Never dropped: if every replica dropped a
   * decision (the leader's own included), nobody could supply it and every
   * replica would stop at that slot, which a 1 MiB-value load did.
   */
  private readonly logOnly = new Set<Slot>();
  /** Highest slot below which some peer said everything is decided. */
  private decidedBelow = slot(0);

  constructor(
    private readonly config: ReplicaConfig,
    private readonly ports: ReplicaPorts,
  ) {
    const bytes = ports.read(META_SPACE, META_KEY);
    if (bytes !== undefined) {
      const m = records.decodeMeta(bytes);
      this.slotOut = slot(m.applied);
      this.compactedBelow = slot(m.compactedBelow);
      this.transferId = m.transferId;
      mark('replica restarts from its stored state');
    }
    this.decidedBelow = this.slotOut;
    // The decisions it had learned beyond its state, as far as they run without a gap.
    for (let s = this.slotOut; ; s++) {
      const d = ports.read(LOG_SPACE, indexKey(s));
      if (d === undefined) break;
      if (!this.hold(slot(s), records.decodeDecided(d).batch)) break;
    }
  }

  firstUnapplied(): Slot {
    return this.slotOut;
  }

  /** Log entries below this are gone: a peer that needs them must transfer the state. */
  logStart(): Slot {
    return this.compactedBelow;
  }

  /** The transfer whose partial state is stored, or 0. */
  transferInProgress(): number {
    return this.transferId;
  }

  /** Every slot below this is decided, as far as this replica knows. */
  knownDecidedBelow(): Slot {
    return this.decidedBelow > this.slotOut ? this.decidedBelow : this.slotOut;
  }

  /** Learns a decision, and applies every slot it makes ready. */
  onDecision(s: Slot, batch: Batch): void {
    if (s >= this.decidedBelow) this.decidedBelow = slot(s + 1);
    if (s < this.slotOut || this.pending.has(s) || this.logOnly.has(s)) return;
    // While a transfer runs, slotOut is stale: decisions past it are what the new state will need.
    if (this.transferId === 0 && s >= this.slotOut + this.config.maxPendingSlots) {
      mark('replica drops a decision too far ahead');
      return;
    }
    // A decision decoded from the wire views its whole frame (up to 4 MiB): one held for later gets its own
    // copy, so what memory keeps is what the byte bound counts.
    if (this.logOnly.size >= this.config.maxPendingSlots) {
      // Only while a long transfer runs: this node is behind, and its peers (the leader first) keep the slot.
      mark('replica drops a decision: too many waiting in its log');
      return;
    }
    const owned = s === this.slotOut && this.transferId === 0 ? batch : batch.map((c) => c.slice());
    this.ports.persistUnsynced(put(LOG_SPACE, indexKey(s), records.encodeDecided({ slot: s, batch: owned })));
    if (!this.hold(s, owned)) {
      mark('replica keeps a decision in its log only: held decisions at their bound');
      this.logOnly.add(s);
    }
    this.ports.learned?.(s, owned);
    this.applyReady();
  }

  /** A peer says every slot below `below` is decided. */
  noteDecidedBelow(below: Slot): void {
    if (below > this.decidedBelow) this.decidedBelow = below;
  }

  /** Whether this replica knows it is missing decisions. */
  lagging(): boolean {
    return this.knownDecidedBelow() > this.slotOut && !this.pending.has(this.slotOut) && !this.logOnly.has(this.slotOut);
  }

  /** How many decided slots this replica has not applied, as far as it knows. */
  lag(): number {
    return this.knownDecidedBelow() - this.slotOut;
  }

  /** Answers a lagging peer: the decisions it lacks from `fromSlot`, within the count and byte bounds. */
  catchupFor(fromSlot: Slot): { decisions: DecidedSlot[]; logStart: Slot } {
    const decisions: DecidedSlot[] = [];
    if (fromSlot < this.compactedBelow || this.transferId !== 0) return { decisions, logStart: this.compactedBelow };
    let bytes = 0;
    for (let s = fromSlot; decisions.length < this.config.maxCatchup; s++) {
      const batch = this.pending.get(slot(s)) ?? this.logged(slot(s));
      if (batch === undefined) break;
      bytes += batchBytes(batch);
      if (decisions.length > 0 && bytes > this.config.maxCatchupBytes) break;
      decisions.push({ slot: slot(s), batch });
    }
    return { decisions, logStart: this.compactedBelow };
  }

  /** The running transfer's state covers every slot below `at`: decisions held below it are useless. */
  transferCovers(at: Slot): void {
    assert(this.transferId !== 0, 'no transfer running');
    for (const [s, batch] of [...this.pending]) if (s < at) this.forget(s, batch);
    for (const s of [...this.logOnly]) if (s < at) this.forgetLogged(s);
  }

  /** A transfer begins: the stored state is no longer whole until `finishTransfer`. */
  beginTransfer(id: number): void {
    assert(id !== 0);
    this.transferId = id;
    this.ports.persist(this.metaWrite());
  }

  /** The state as of `at` (every slot below it applied) is fully stored: resume from there. */
  finishTransfer(at: Slot): void {
    assert(this.transferId !== 0, 'no transfer to finish');
    mark('replica installs a transferred state');
    // The log behind the new state is useless now: what was applied before, and what is held below `at`.
    for (let s = this.compactedBelow; s < this.slotOut; s++) this.ports.persistUnsynced(del(LOG_SPACE, indexKey(s)));
    // The state is exactly the state at `at`, even in the odd case that we had applied further before.
    this.slotOut = at;
    for (const [s, batch] of [...this.pending]) if (s < at || s >= at + this.config.maxPendingSlots) this.forget(s, batch);
    for (const s of [...this.logOnly]) if (s < at || s >= at + this.config.maxPendingSlots) this.forgetLogged(s);
    this.compactedBelow = this.slotOut;
    if (this.decidedBelow < this.slotOut) this.decidedBelow = this.slotOut;
    this.transferId = 0;
    this.ports.persist(this.metaWrite());
    this.applyReady();
  }

  pendingCount(): number {
    return this.pending.size;
  }

  checkInvariants(): void {
    assert(this.compactedBelow <= this.slotOut, 'log compacted past the applied state');
    assert(this.pending.size <= this.config.maxPendingSlots, 'too many held decisions');
    assert(this.pendingBytes <= this.config.maxPendingDecisionBytes, 'held decisions past their byte bound');
    for (const s of this.logOnly) assert(s >= this.slotOut && !this.pending.has(s), `log-only slot ${s} misfiled`);
    assert(this.logOnly.size <= this.config.maxPendingSlots, 'too many log-only decisions');
    for (const s of this.pending.keys()) {
      assert(s >= this.slotOut, `held slot ${s} below the applied state`);
      if (this.transferId === 0) assert(s < this.slotOut + this.config.maxPendingSlots, `held slot ${s} too far ahead`);
    }
  }

  /** Applies every held decision that is next in line (also called once the host is built, at start). */
  applyReady(): void {
    if (this.transferId !== 0) return;
    const from = this.slotOut;
    let bytes = 0;
    for (;;) {
      const held = this.pending.get(this.slotOut);
      const inLog = held === undefined && this.logOnly.has(this.slotOut);
      const batch = held ?? (inLog ? this.logged(this.slotOut) : undefined);
      assert(!inLog || batch !== undefined, `log-only slot ${this.slotOut} missing from the log`);
      if (batch === undefined) break;
      if (bytes > 0 && bytes + batchBytes(batch) > this.config.maxApplyBytesPerStep) {
        mark('replica applies the rest in a later step');
        this.ports.moreToApply();
        break;
      }
      bytes += batchBytes(batch);
      if (inLog) this.logOnly.delete(this.slotOut);
      else this.release(this.slotOut, batch);
      this.ports.apply(this.slotOut, batch);
      this.slotOut = slot(this.slotOut + 1);
    }
    if (this.slotOut === from) return;
    this.compact();
    this.ports.persistUnsynced(this.metaWrite());
  }

  /** Holds a decided batch in memory if the bounds allow. */
  private hold(s: Slot, batch: Batch): boolean {
    const bytes = batchBytes(batch);
    const full = () =>
      this.pending.size >= this.config.maxPendingSlots || this.pendingBytes + bytes > this.config.maxPendingDecisionBytes;
    // Full: the lowest slots are the ones needed first, so a lower slot evicts the highest held.
    while (full()) {
      let highest: Slot | undefined;
      for (const h of this.pending.keys()) if (highest === undefined || h > highest) highest = h;
      if (highest === undefined || highest < s) return false;
      mark('replica moves its highest held decision to its log only, for a lower one');
      const evicted = this.pending.get(highest);
      assert(evicted !== undefined);
      this.release(highest, evicted);
      this.logOnly.add(highest);
    }
    this.pending.set(s, batch);
    this.pendingBytes += bytes;
    return true;
  }

  private release(s: Slot, batch: Batch): void {
    if (this.pending.delete(s)) this.pendingBytes -= batchBytes(batch);
  }

  /** Drops a log-only decision that will never be applied here. */
  private forgetLogged(s: Slot): void {
    this.logOnly.delete(s);
    this.ports.persistUnsynced(del(LOG_SPACE, indexKey(s)));
  }

  /** Drops a held decision that will never be applied here, and its log entry. */
  private forget(s: Slot, batch: Batch): void {
    this.release(s, batch);
    this.ports.persistUnsynced(del(LOG_SPACE, indexKey(s)));
  }

  /** Drops log entries past the retained tail; they go in the batch after the state they produced. */
  private compact(): void {
    // A peer may be receiving our state as of a slot: keep the log from there, so it can catch up after.
    const pinned = Math.min(this.slotOut - this.config.logRetainSlots, this.ports.keepLogFrom());
    const below = Math.min(pinned, this.compactedBelow + COMPACT_MAX_SLOTS);
    if (below < this.compactedBelow + Math.max(1, Math.floor(this.config.logRetainSlots / 4))) return;
    mark('replica compacts its log');
    for (let s = this.compactedBelow; s < below; s++) this.ports.persistUnsynced(del(LOG_SPACE, indexKey(s)));
    this.compactedBelow = slot(below);
  }

  private logged(s: Slot): Batch | undefined {
    const bytes = this.ports.read(LOG_SPACE, indexKey(s));
    return bytes === undefined ? undefined : records.decodeDecided(bytes).batch;
  }

  private metaWrite(): StorageWrite {
    const meta: ReplicaMeta = { applied: this.slotOut, compactedBelow: this.compactedBelow, transferId: this.transferId };
    return put(META_SPACE, META_KEY, records.encodeMeta(meta));
  }
}
