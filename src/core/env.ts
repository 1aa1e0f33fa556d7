// The environment a protocol role acts through (DESIGN.md 1). A role reacts to
// one input at a time and never touches the outside world: what it wants done
// is collected into a ready batch that its runtime (simulated or real) drains
// in a fixed order: persist every write durably, then release the messages,
// then arm the timers. A promise on the wire is therefore on disk first.
import { assert } from './assert.js';
import type { Millis, NodeId } from './ids.js';
import type { StorageWrite, StoredState } from './storage.js';

export interface Env<M, T> {
  readonly self: NodeId;
  send(to: NodeId, message: M): void;
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
  /** For leases and metrics only, never for safety. */
  now(): Millis;
  /** Seeded; uniform in [0, 1). */
  random(): number;
}

/** A protocol role: a deterministic state machine over messages and timers. */
export interface ProtocolNode<M, T> {
  onMessage(from: NodeId, message: M): void;
  onTimer(timer: T): void;
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
  readonly writes: StorageWrite[];
  /** Whether any write must be synced (then the whole batch is). */
  mustSync: boolean;
  readonly messages: Outgoing<M>[];
  readonly timers: TimerRequest<T>[];
}

/**
 * The Env every runtime hands to its roles: it only records. The runtime
 * calls `take()` after one or more steps and carries the batch out.
 */
export class ReadyCollector<M, T> implements Env<M, T> {
  private batch: ReadyBatch<M, T> = emptyBatch();

  constructor(
    readonly self: NodeId,
    private readonly clock: () => Millis,
    private readonly rng: () => number,
  ) {}

  send(to: NodeId, message: M): void {
    this.batch.messages.push({ to, message });
  }

  setTimer(timer: T, afterMs: Millis): void {
    assert(afterMs >= 0, 'timer in the past');
    this.batch.timers.push({ timer, afterMs });
  }

  persist(...writes: StorageWrite[]): void {
    this.batch.writes.push(...writes);
    if (writes.length > 0) this.batch.mustSync = true;
  }

  persistUnsynced(...writes: StorageWrite[]): void {
    this.batch.writes.push(...writes);
  }

  now(): Millis {
    return this.clock();
  }

  random(): number {
    return this.rng();
  }

  isEmpty(): boolean {
    const b = this.batch;
    return b.writes.length === 0 && b.messages.length === 0 && b.timers.length === 0;
  }

  take(): ReadyBatch<M, T> {
    const b = this.batch;
    this.batch = emptyBatch();
    return b;
  }
}

function emptyBatch<M, T>(): ReadyBatch<M, T> {
  return { writes: [], mustSync: false, messages: [], timers: [] };
}
