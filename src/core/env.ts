// The environment a protocol role acts through (DESIGN.md 1). A role reacts to
// one input at a time and never touches the outside world: what it wants done
// is collected into a ready batch that its runtime (simulated or real) drains
// in a fixed order: persist every write durably, then release the messages,
// then arm the timers and start the scans. A promise on the wire is therefore
// on disk first. Reads are synchronous, through the overlay of the role's own
// writes not yet on disk (DESIGN.md 3).
import { assert } from './assert.js';
import type { GroupId, Millis, NodeId } from './ids.js';
import { Overlay } from './overlay.js';
import type { ScanRequest, ScanResult, StorageWrite, StoredState } from './storage.js';

export interface Env<M, T> {
  readonly self: NodeId;
  /** Leaves once every write of this step and the ones before is on disk (DESIGN.md 1). */
  send(to: NodeId, message: M): void;
  /**
   * Leaves when the step ends, without waiting for the disk: only for a
   * message that vouches for nothing this node has yet to write (a heartbeat,
   * a proposal, a decision a quorum already made). Behind a slow fsync, a
   * heartbeat held with the writes would trigger elections.
   */
  sendNow(to: NodeId, message: M): void;
  /**
   * Sends `message` to the replica of another group at node `to` (a node's
   * env, src/paxos/group-env.ts, has it; a single group's does not).
   */
  sendToGroup?(group: GroupId, to: NodeId, message: M): void;
  /** Fires `timer` once after `afterMs`. Timers are values, checked for staleness when they fire. */
  setTimer(timer: T, afterMs: Millis): void;
  /** Durable (synced) before any message sent in the same step leaves. */
  persist(...writes: StorageWrite[]): void;
  /**
   * Written, in order with every other write, before this step's messages
   * leave, but not synced: a crash may lose it (and every write after it).
   * For state that can be recovered from elsewhere.
   */
  persistUnsynced(...writes: StorageWrite[]): void;
  /**
   * This step's messages vouch for everything written so far (a client's
   * answer): they leave only once all of it is synced, unsynced writes too.
   */
  syncBeforeSending(): void;
  /** The value under `key`: this role's own writes first, then the disk. */
  read(space: string, key: string): Uint8Array | undefined;
  /** Opens a read snapshot of everything persisted so far (for scan); returns its id. */
  openSnapshot(): number;
  releaseSnapshot(id: number): void;
  /** Starts a scan; its result arrives later through `ProtocolNode.onScanned`. */
  scan(request: ScanRequest): void;
  /** For leases, metrics, and the rebuild quiet period (rejoin.ts), which assume clocks run at nearly the same rate. */
  now(): Millis;
  /** Seeded; uniform in [0, 1). */
  random(): number;
}

/** A protocol role: a deterministic state machine over messages, timers and scan results. */
export interface ProtocolNode<M, T> {
  onMessage(from: NodeId, message: M): void;
  onTimer(timer: T): void;
  /** A scan this role asked for completed; `undefined` when its snapshot is gone (released, or lost to a restart). */
  onScanned?(request: ScanRequest, result: ScanResult | undefined): void;
  /** Asserts the role's own invariants; the simulator calls it after every step. */
  checkInvariants?(): void;
}

/** Builds a role from what its storage kept; called at start and after every crash. */
export type NodeFactory<M, T> = (env: Env<M, T>, stored: StoredState) => ProtocolNode<M, T>;

export interface Outgoing<M> {
  readonly to: NodeId;
  readonly message: M;
}

export interface TimerRequest<T> {
  readonly timer: T;
  readonly afterMs: Millis;
}

/** What one or more steps asked for, drained by the runtime in field order. */
export interface ReadyBatch<M, T> {
  /** Settle this generation in the overlay once the writes are on disk. */
  readonly gen: number;
  readonly writes: StorageWrite[];
  /** Bytes of the values written (a bound on memory, not an exact size). */
  writeBytes: number;
  /** Whether any write must be synced (then the whole batch is). */
  mustSync: boolean;
  readonly messages: Outgoing<M>[];
  timers: TimerRequest<T>[];
  readonly scans: ScanRequest[];
  readonly releases: number[];
}

/**
 * The Env every runtime hands to its roles: it only records. The runtime
 * calls `take()` after one or more steps, carries the batch out, and calls
 * `settled(batch.gen)` once its writes are readable from storage.
 */
export class ReadyCollector<M, T> implements Env<M, T> {
  private gen = 0;
  private batch: ReadyBatch<M, T> = emptyBatch(0);
  private readonly overlay = new Overlay();
  private nextSnapshot = 1;
  private urgent: Outgoing<M>[] = [];

  constructor(
    readonly self: NodeId,
    private readonly clock: () => Millis,
    private readonly rng: () => number,
    private readonly disk: (space: string, key: string) => Uint8Array | undefined = () => undefined,
  ) {}

  send(to: NodeId, message: M): void {
    this.batch.messages.push({ to, message });
  }

  sendNow(to: NodeId, message: M): void {
    this.urgent.push({ to, message });
  }

  /**
   * The timers set since the last take: the runtime arms them at once. A timer
   * vouches for nothing on disk (its step's sends still wait for the flush);
   * armed only after a slow fsync, the leader's heartbeat tick would slip and
   * its followers would hold elections.
   */
  takeTimers(): TimerRequest<T>[] {
    const t = this.batch.timers;
    this.batch.timers = [];
    return t;
  }

  /** The sendNow messages of the steps so far: the runtime sends them at once. */
  takeUrgent(): Outgoing<M>[] {
    const u = this.urgent;
    this.urgent = [];
    return u;
  }

  setTimer(timer: T, afterMs: Millis): void {
    assert(afterMs >= 0, 'timer in the past');
    this.batch.timers.push({ timer, afterMs });
  }

  persist(...writes: StorageWrite[]): void {
    this.record(writes);
    if (writes.length > 0) this.syncBeforeSending();
  }

  persistUnsynced(...writes: StorageWrite[]): void {
    this.record(writes);
  }

  syncBeforeSending(): void {
    this.batch.mustSync = true;
  }

  read(space: string, key: string): Uint8Array | undefined {
    const o = this.overlay.lookup(space, key);
    return o.hit ? o.value : this.disk(space, key);
  }

  openSnapshot(): number {
    const id = this.nextSnapshot++;
    this.batch.writes.push({ op: 'snapshot', id });
    return id;
  }

  releaseSnapshot(id: number): void {
    this.batch.releases.push(id);
  }

  scan(request: ScanRequest): void {
    assert(request.maxBytes > 0, 'scan of no bytes');
    this.batch.scans.push(request);
  }

  now(): Millis {
    return this.clock();
  }

  random(): number {
    return this.rng();
  }

  isEmpty(): boolean {
    const b = this.batch;
    return (
      b.writes.length === 0 &&
      b.messages.length === 0 &&
      b.timers.length === 0 &&
      b.scans.length === 0 &&
      b.releases.length === 0
    );
  }

  take(): ReadyBatch<M, T> {
    const b = this.batch;
    this.gen += 1;
    this.batch = emptyBatch(this.gen);
    return b;
  }

  /** The writes of batch `gen` (and every earlier one) are readable from storage now. */
  settled(gen: number): void {
    this.overlay.settle(gen);
  }

  /** Bytes of the writes collected since the last take(). */
  get pendingWriteBytes(): number {
    return this.batch.writeBytes;
  }

  private record(writes: readonly StorageWrite[]): void {
    for (const w of writes) {
      assert(w.op !== 'snapshot', 'snapshots are opened with openSnapshot()');
      this.overlay.note(w, this.batch.gen);
      this.batch.writes.push(w);
      if (w.op === 'put') this.batch.writeBytes += w.value.length + w.key.length;
    }
  }
}

function emptyBatch<M, T>(gen: number): ReadyBatch<M, T> {
  return { gen, writes: [], writeBytes: 0, mustSync: false, messages: [], timers: [], scans: [], releases: [] };
}
