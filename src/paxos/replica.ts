// PMMC replica (section 3, fig. 1), learner side: applies decided batches in
// slot order to the at-most-once application and answers the clients that are
// waiting on this server. Decisions are logged durably as they are learned;
// every `snapshotEvery` slots the applied state is snapshotted and the log
// behind it dropped (section 4's garbage collection). A replica that lags —
// restarted, partitioned, or just missing Decision messages — catches up from
// a peer's log, or from its snapshot when that log is gone.
//
// Invariants: snapshotSlot <= slotOut; the log holds only slots >= snapshotSlot;
// a slot is applied exactly once, in order.
import { assert } from '../core/assert.js';
import type { NodeId, Slot } from '../core/ids.js';
import { slot } from '../core/ids.js';
import { del, indexKey, put, type StorageWrite, type StoredState, space } from '../core/storage.js';
import type { AmoApplication } from '../rpc/amo-application.js';
import type { AmoCommand, AmoResult } from '../rpc/messages.js';
import { mark } from '../core/marks.js';
import { records } from './codec.js';
import type { Batch, DecidedSlot, ReplicaSnapshot } from './messages.js';

export const LOG_SPACE = 'log';
export const SNAPSHOT_SPACE = 'snapshot';
const SNAPSHOT_KEY = 'latest';

export interface ReplicaConfig {
  /** Applied slots between snapshots. */
  readonly snapshotEvery: number;
  /** Decisions in one catch-up reply at most. */
  readonly maxCatchup: number;
  /** Clients waiting for an answer, at most (the oldest are forgotten: they retry). */
  readonly maxWaiting: number;
}

export interface ReplicaPorts {
  persist(...writes: StorageWrite[]): void;
  /** Decisions are durable at a majority of acceptors already: the local log need not be synced. */
  persistUnsynced(...writes: StorageWrite[]): void;
  reply(to: NodeId, result: AmoResult): void;
  /** Every decision the first time this replica learns it (for tests' cross-replica checks). */
  learned?(s: Slot, batch: Batch): void;
}

export class Replica {
  private slotOut = slot(0);
  private snapshotSlot = slot(0);
  private readonly log = new Map<Slot, Batch>();
  /** Command key -> the client to answer when it applies. */
  private readonly waiting = new Map<string, NodeId>();
  /** Highest slot below which some peer said everything is decided. */
  private decidedBelow = slot(0);
  /** Bytes of the latest snapshot, kept to serve catch-up without re-encoding. */
  private cachedSnapshot: Uint8Array | undefined;

  constructor(
    private readonly app: AmoApplication,
    private readonly config: ReplicaConfig,
    private readonly ports: ReplicaPorts,
    stored: StoredState,
  ) {
    const snap = space(stored, SNAPSHOT_SPACE).get(SNAPSHOT_KEY);
    if (snap !== undefined) {
      mark('replica restarts from its snapshot');
      this.install(records.decodeSnapshot(snap));
    }
    for (const bytes of space(stored, LOG_SPACE).values()) {
      const d = records.decodeDecided(bytes);
      if (d.slot >= this.snapshotSlot) this.log.set(d.slot, d.batch);
    }
    this.applyReady();
  }

  firstUnapplied(): Slot {
    return this.slotOut;
  }

  compactedBelow(): Slot {
    return this.snapshotSlot;
  }

  /** Every slot below this is decided, as far as this replica knows. */
  knownDecidedBelow(): Slot {
    return this.decidedBelow > this.slotOut ? this.decidedBelow : this.slotOut;
  }

  /** A client's command arrived here: remember whom to answer. True if it still needs proposing. */
  admit(client: NodeId, command: AmoCommand): boolean {
    if (command.kind === 'request') {
      const cached = this.app.cachedResult(command.session, command.seq);
      if (cached !== undefined) {
        this.ports.reply(client, { kind: 'result', session: command.session, seq: command.seq, result: cached });
        return false;
      }
    }
    const key = commandKey(command);
    this.waiting.delete(key);
    this.waiting.set(key, client);
    if (this.waiting.size > this.config.maxWaiting) {
      const oldest = this.waiting.keys().next();
      if (!oldest.done) this.waiting.delete(oldest.value);
    }
    return true;
  }

  /** Learns a decision, and applies every slot it makes ready. */
  onDecision(s: Slot, batch: Batch): void {
    if (s < this.slotOut || this.log.has(s)) return;
    this.log.set(s, batch);
    this.ports.persistUnsynced(put(LOG_SPACE, indexKey(s), records.encodeDecided({ slot: s, batch })));
    this.ports.learned?.(s, batch);
    if (s >= this.decidedBelow) this.decidedBelow = slot(s + 1);
    this.applyReady();
  }

  /** A peer says every slot below `below` is decided. */
  noteDecidedBelow(below: Slot): void {
    if (below > this.decidedBelow) this.decidedBelow = below;
  }

  /** Whether this replica knows it is missing decisions. */
  lagging(): boolean {
    return this.decidedBelow > this.slotOut && !this.log.has(this.slotOut);
  }

  /** Answers a lagging peer: the decisions it lacks, with our snapshot first if our log no longer reaches back. */
  catchupFor(fromSlot: Slot): { decisions: DecidedSlot[]; snapshot: ReplicaSnapshot | undefined } {
    let snapshot: ReplicaSnapshot | undefined;
    let from = fromSlot;
    if (from < this.snapshotSlot) {
      snapshot = { slot: this.snapshotSlot, state: this.snapshotState() };
      from = this.snapshotSlot;
    }
    const decisions: DecidedSlot[] = [];
    for (let s = from; decisions.length < this.config.maxCatchup; s++) {
      const batch = this.log.get(slot(s));
      if (batch === undefined) break;
      decisions.push({ slot: slot(s), batch });
    }
    return { decisions, snapshot };
  }

  onCatchup(decisions: readonly DecidedSlot[], snapshot: ReplicaSnapshot | undefined): void {
    if (snapshot !== undefined && snapshot.slot > this.slotOut) {
      mark('replica installs a peer snapshot');
      this.install(snapshot);
      this.keepSnapshot(snapshot);
      // Decisions learned while we lagged may follow the snapshot directly.
      this.applyReady();
    }
    for (const d of decisions) this.onDecision(d.slot, d.batch);
  }

  logSize(): number {
    return this.log.size;
  }

  checkInvariants(): void {
    assert(this.snapshotSlot <= this.slotOut, 'snapshot ahead of the applied state');
    for (const s of this.log.keys()) assert(s >= this.snapshotSlot, 'log kept a compacted slot');
  }

  private applyReady(): void {
    for (;;) {
      const batch = this.log.get(this.slotOut);
      if (batch === undefined) break;
      for (const command of batch) this.answer(command, this.app.apply(command));
      this.slotOut = slot(this.slotOut + 1);
    }
    if (this.slotOut >= this.snapshotSlot + this.config.snapshotEvery) this.compact();
  }

  private answer(command: AmoCommand, result: AmoResult): void {
    const key = commandKey(command);
    const client = this.waiting.get(key);
    if (client === undefined) return;
    this.waiting.delete(key);
    this.ports.reply(client, result);
  }

  private compact(): void {
    mark('replica compacts its log');
    this.keepSnapshot({ slot: this.slotOut, state: this.app.snapshot() });
  }

  /** Makes `snap` the durable snapshot and drops the log behind it, in the same write batch. */
  private keepSnapshot(snap: ReplicaSnapshot): void {
    this.ports.persist(put(SNAPSHOT_SPACE, SNAPSHOT_KEY, records.encodeSnapshot(snap)));
    this.snapshotSlot = snap.slot;
    this.cachedSnapshot = snap.state;
    for (const s of [...this.log.keys()]) {
      if (s >= snap.slot) continue;
      this.log.delete(s);
      this.ports.persist(del(LOG_SPACE, indexKey(s)));
    }
  }

  private snapshotState(): Uint8Array {
    assert(this.cachedSnapshot !== undefined, 'no snapshot to send');
    return this.cachedSnapshot;
  }

  private install(snap: ReplicaSnapshot): void {
    this.app.restore(snap.state);
    this.slotOut = snap.slot;
    this.snapshotSlot = snap.slot;
    this.cachedSnapshot = snap.state;
    if (snap.slot > this.decidedBelow) this.decidedBelow = snap.slot;
  }
}

function commandKey(c: AmoCommand): string {
  return c.kind === 'register' ? `r${c.nonce}` : `${c.session}:${c.seq}`;
}
