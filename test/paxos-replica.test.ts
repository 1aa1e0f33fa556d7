// Replica unit tests, fed decisions directly. Its ports write to and read from
// a MemoryStorage (the simulator's disk), so a test can restart a replica from
// what it stored, or crash the disk first.
import { describe, expect, it } from 'vitest';
import { type Slot, slot } from '../src/core/ids.js';
import { indexKey, put, type StorageWrite } from '../src/core/storage.js';
import { records } from '../src/paxos/codec.js';
import type { Batch } from '../src/paxos/messages.js';
import { LOG_SPACE, META_SPACE, Replica, type ReplicaConfig } from '../src/paxos/replica.js';
import { MemoryStorage } from '../src/sim/memory-storage.js';

const CONFIG: ReplicaConfig = { logRetainSlots: 1000, maxPendingSlots: 100, maxPendingDecisionBytes: 1 << 20, maxApplyBytesPerStep: 1 << 30, maxCatchup: 100, maxCatchupBytes: 1 << 20 };

/** A batch that names its slot, so a test can tell which batch was applied where. */
function batchOf(s: number, size = 2): Batch {
  const command = new Uint8Array(size);
  command[0] = s & 0xff;
  command[1] = s >> 8;
  return [command];
}

function harness(config: ReplicaConfig = CONFIG, disk = new MemoryStorage([LOG_SPACE, META_SPACE])) {
  const applied: Array<[number, number[][]]> = [];
  const learned: number[] = [];
  const more = { asked: 0 };
  const pin = { from: Infinity };
  const writes: StorageWrite[] = [];
  const r = new Replica(config, {
    persist: (...w) => {
      writes.push(...w);
      disk.writeSync(w, { sync: true });
    },
    persistUnsynced: (...w) => {
      writes.push(...w);
      disk.writeSync(w, { sync: false });
    },
    read: (space, key) => disk.getSync(space, key),
    apply: (s, batch) => applied.push([s, batch.map((c) => [...c])]),
    moreToApply: () => (more.asked += 1),
    keepLogFrom: () => pin.from,
    learned: (s) => learned.push(s),
  });
  r.checkInvariants();
  const decide = (...slots: number[]) => {
    for (const s of slots) {
      r.onDecision(slot(s), batchOf(s));
      r.checkInvariants();
    }
  };
  return {
    r,
    more,
    pin,
    disk,
    applied,
    learned,
    writes,
    decide,
    /** Slots applied so far, in the order they were applied. */
    appliedSlots: () => applied.map(([s]) => s),
    /** Slots whose decision the log holds on disk. */
    logged: () =>
      [...(disk.loadSpacesSync([LOG_SPACE]).get(LOG_SPACE)?.keys() ?? [])].map((k) => parseInt(k, 16)),
    /** A new replica over the same disk (a restart without data loss). */
    restart: () => harness(config, disk),
  };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

function slotsOf(decisions: ReadonlyArray<{ slot: Slot }>): number[] {
  return decisions.map((d) => d.slot);
}

describe('Replica: applying', () => {
  it('applies decisions in slot order, whatever order they arrive in', () => {
    const h = harness();
    h.decide(1, 2);
    expect(h.r.firstUnapplied()).toBe(0);
    expect(h.applied).toEqual([]);
    expect(h.r.pendingCount()).toBe(2);
    h.decide(4);
    h.decide(0);
    expect(h.r.firstUnapplied()).toBe(3);
    expect(h.appliedSlots()).toEqual([0, 1, 2]);
    h.decide(3);
    expect(h.r.firstUnapplied()).toBe(5);
    expect(h.appliedSlots()).toEqual([0, 1, 2, 3, 4]);
    // Each slot with its own batch.
    for (const [s, batch] of h.applied) expect(batch).toEqual([[...batchOf(s)[0]!]]);
    expect(h.r.pendingCount()).toBe(0);
  });

  it('applies each slot once: repeated and old decisions are ignored', () => {
    const h = harness();
    h.decide(2, 2);
    h.decide(0, 1, 0, 2, 1);
    expect(h.appliedSlots()).toEqual([0, 1, 2]);
    expect(h.learned).toEqual([2, 0, 1]);
    expect(h.r.firstUnapplied()).toBe(3);
  });

  it('applies an empty batch (a no-op slot) like any other', () => {
    const h = harness();
    h.r.onDecision(slot(0), []);
    expect(h.applied).toEqual([[0, []]]);
    expect(h.r.firstUnapplied()).toBe(1);
  });

  it('logs every decision as it learns it, and stores the applied slot', () => {
    const h = harness();
    h.decide(1);
    expect(h.logged()).toEqual([1]);
    const logged = h.disk.getSync(LOG_SPACE, indexKey(1));
    expect(logged && records.decodeDecided(logged)).toEqual({ slot: 1, batch: batchOf(1) });
    expect(h.disk.getSync(META_SPACE, 'replica')).toBeUndefined(); // nothing applied yet
    h.decide(0);
    expect(h.logged()).toEqual([0, 1]);
    const meta = h.disk.getSync(META_SPACE, 'replica');
    expect(meta && records.decodeMeta(meta)).toEqual({ applied: 2, compactedBelow: 0, transferId: 0 });
  });

  it('knows when it lags: a peer said more is decided, and it lacks the next slot', () => {
    const h = harness();
    expect(h.r.lagging()).toBe(false);
    h.r.noteDecidedBelow(slot(5));
    expect(h.r.knownDecidedBelow()).toBe(5);
    expect(h.r.lag()).toBe(5);
    expect(h.r.lagging()).toBe(true);
    h.decide(0, 1);
    expect(h.r.lag()).toBe(3);
    expect(h.r.lagging()).toBe(true);
    h.decide(3); // learned past a gap: raises what it knows is decided
    expect(h.r.knownDecidedBelow()).toBe(5);
    h.decide(2, 4);
    expect(h.r.lag()).toBe(0);
    expect(h.r.lagging()).toBe(false);
    h.r.noteDecidedBelow(slot(3)); // an older claim changes nothing
    expect(h.r.knownDecidedBelow()).toBe(5);
  });
});

describe('Replica: bounded memory', () => {
  const config: ReplicaConfig = { ...CONFIG, maxPendingSlots: 4 };

  it('drops decisions beyond maxPendingSlots (neither kept, logged nor learned), and takes them once in range', () => {
    const h = harness(config);
    h.decide(1, 2, 3);
    h.decide(4, 9);
    expect(h.r.pendingCount()).toBe(3);
    expect(h.logged()).toEqual([1, 2, 3]);
    expect(h.learned).toEqual([1, 2, 3]);
    // It still heard that those slots are decided: it knows it lags.
    expect(h.r.knownDecidedBelow()).toBe(10);
    expect(h.r.lagging()).toBe(true);
    h.decide(0);
    expect(h.r.firstUnapplied()).toBe(4);
    h.decide(4, 5, 6, 7, 8);
    expect(h.r.firstUnapplied()).toBe(9);
    expect(h.appliedSlots()).toEqual(range(0, 9));
    expect(h.learned).toEqual([1, 2, 3, 0, 4, 5, 6, 7, 8]);
  });
});

describe('Replica: held decisions during a transfer and in bytes', () => {
  it('holds no more than maxPendingDecisionBytes of decisions in memory, and logs every one', () => {
    const h = harness({ ...CONFIG, maxPendingDecisionBytes: 3 * 1004 });
    for (const s of [1, 2, 3, 4, 5]) h.r.onDecision(slot(s), batchOf(s, 1000));
    expect(h.r.pendingCount()).toBe(3);
    // Dropping 4 and 5 here would lose them for good if every replica did the same (the leader's own too).
    expect(h.logged()).toEqual([1, 2, 3, 4, 5]);
    h.r.checkInvariants();
    h.r.onDecision(slot(0), batchOf(0, 1000));
    expect(h.appliedSlots()).toEqual([0, 1, 2, 3, 4, 5]);
    h.r.checkInvariants();
  });

  it('while a transfer runs, holds decisions far past its stale slot, and drops those the transferred state covers', () => {
    const h = harness({ ...CONFIG, maxPendingSlots: 4 });
    h.r.beginTransfer(5);
    h.decide(50, 51, 60, 61);
    expect(h.r.pendingCount()).toBe(4);
    h.r.transferCovers(slot(60));
    expect(h.r.pendingCount()).toBe(2);
    h.r.finishTransfer(slot(60));
    expect(h.appliedSlots()).toEqual([60, 61]);
    expect(h.r.firstUnapplied()).toBe(62);
    // The log behind the new state is gone; what was held past it is logged again (then compacted no further).
    expect(h.logged().every((s) => s >= 60)).toBe(true);
  });
});

describe('Replica: held decisions prefer the lowest slots; a served transfer pins the log', () => {
  it('a lower slot takes the memory of the highest held one when the bound is reached; both stay in the log', () => {
    const h = harness({ ...CONFIG, maxPendingSlots: 3 });
    h.r.beginTransfer(9);
    h.decide(10, 11, 12);
    h.decide(5);
    expect(h.r.pendingCount()).toBe(3);
    expect(h.logged()).toEqual([5, 10, 11, 12]);
    h.decide(20); // higher than everything held: in the log only
    expect(h.r.pendingCount()).toBe(3);
    expect(h.logged()).toEqual([5, 10, 11, 12, 20]);
  });

  it('does not compact the log past a slot a peer is being sent the state of', () => {
    const h = harness({ ...CONFIG, logRetainSlots: 4 });
    h.pin.from = 3;
    h.decide(...range(0, 40));
    expect(h.r.logStart()).toBe(3);
    expect(Math.min(...h.logged())).toBe(3);
    h.pin.from = Infinity;
    h.decide(40);
    expect(h.r.logStart()).toBe(37);
  });
});

describe('Replica: bounded steps', () => {
  it('applies at most maxApplyBytesPerStep per step (at least one slot) and asks for another step', () => {
    const h = harness({ ...CONFIG, maxApplyBytesPerStep: 2 * 104 });
    for (const s of [1, 2, 3, 4, 5]) h.r.onDecision(slot(s), batchOf(s, 100));
    expect(h.appliedSlots()).toEqual([]);
    h.r.onDecision(slot(0), batchOf(0, 100));
    expect(h.appliedSlots()).toEqual([0, 1]);
    expect(h.more.asked).toBe(1);
    h.r.applyReady();
    h.r.applyReady();
    expect(h.appliedSlots()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(h.more.asked).toBe(2);
  });
});

describe('Replica: restart', () => {
  it('resumes at the applied slot it stored, with the log it kept', () => {
    const h = harness();
    h.decide(0, 1, 2, 3, 4);
    const again = h.restart();
    expect(again.r.firstUnapplied()).toBe(5);
    expect(again.r.logStart()).toBe(0);
    expect(again.r.pendingCount()).toBe(0);
    expect(slotsOf(again.r.catchupFor(slot(0)).decisions)).toEqual([0, 1, 2, 3, 4]);
    again.decide(3, 4); // already applied before the restart
    again.decide(5);
    expect(again.appliedSlots()).toEqual([5]);
    expect(again.r.firstUnapplied()).toBe(6);
  });

  it('reloads the decisions it had logged past its applied slot, as far as they run without a gap', () => {
    const disk = new MemoryStorage([LOG_SPACE, META_SPACE]);
    const log = (s: number) => put(LOG_SPACE, indexKey(s), records.encodeDecided({ slot: slot(s), batch: batchOf(s) }));
    disk.writeSync(
      [
        put(META_SPACE, 'replica', records.encodeMeta({ applied: 3, compactedBelow: 0, transferId: 0 })),
        ...[0, 1, 2, 3, 4, 5, 6, 8].map(log),
      ],
      { sync: true },
    );
    const h = harness(CONFIG, disk);
    expect(h.r.firstUnapplied()).toBe(3);
    expect(h.r.pendingCount()).toBe(4); // 3..6; 8 lies past the gap at 7
    expect(slotsOf(h.r.catchupFor(slot(1)).decisions)).toEqual([1, 2, 3, 4, 5, 6]);
    // The reloaded decisions are not learned again; with the next one, all of them are applied, in order.
    h.decide(3, 4);
    expect(h.learned).toEqual([]);
    h.decide(7);
    expect(h.appliedSlots()).toEqual([3, 4, 5, 6, 7]);
    for (const [s, batch] of h.applied) expect(batch).toEqual([[...batchOf(s)[0]!]]);
    h.decide(8);
    expect(h.r.firstUnapplied()).toBe(9);
  });

  it('after a crash, resumes at the last applied slot a synced write covered', () => {
    const h = harness();
    h.decide(0, 1, 2);
    h.disk.writeSync([], { sync: true }); // a later synced write (an acceptor's promise, say)
    h.decide(3, 4);
    h.disk.crash();
    const again = h.restart();
    expect(again.r.firstUnapplied()).toBe(3);
    expect(again.logged()).toEqual([0, 1, 2]);
    again.decide(3, 4);
    expect(again.appliedSlots()).toEqual([3, 4]);
  });

  it('keeps where its log starts across a restart', () => {
    const config: ReplicaConfig = { ...CONFIG, logRetainSlots: 4 };
    const h = harness(config);
    h.decide(...range(0, 12));
    const again = h.restart();
    expect(again.r.logStart()).toBe(h.r.logStart());
    expect(again.r.logStart()).toBeGreaterThan(0);
    expect(again.r.catchupFor(slot(0)).decisions).toEqual([]);
  });
});

describe('Replica: log compaction', () => {
  it('keeps the last logRetainSlots applied slots and deletes older entries', () => {
    const config: ReplicaConfig = { ...CONFIG, logRetainSlots: 4 };
    const h = harness(config);
    h.decide(...range(0, 4));
    expect(h.r.logStart()).toBe(0);
    expect(h.logged()).toEqual([0, 1, 2, 3]);
    h.decide(...range(4, 10));
    expect(h.r.firstUnapplied()).toBe(10);
    expect(h.r.logStart()).toBe(6);
    expect(h.logged()).toEqual([6, 7, 8, 9]);
    const meta = h.disk.getSync(META_SPACE, 'replica');
    expect(meta && records.decodeMeta(meta)).toEqual({ applied: 10, compactedBelow: 6, transferId: 0 });
  });

  it('compacts in steps, never leaving fewer than logRetainSlots entries nor a gap', () => {
    const config: ReplicaConfig = { ...CONFIG, logRetainSlots: 8 };
    const h = harness(config);
    for (let s = 0; s < 40; s++) {
      h.decide(s);
      const start = h.r.logStart();
      expect(start).toBeLessThanOrEqual(Math.max(0, s + 1 - 8));
      expect(s + 1 - start).toBeLessThan(8 + 2 + 1); // steps of logRetainSlots / 4
      expect(h.logged()).toEqual(range(start, s + 1));
    }
    expect(h.r.logStart()).toBeGreaterThanOrEqual(30);
  });

  it('answers a catch-up from below its log start with no decisions and where the log starts', () => {
    const config: ReplicaConfig = { ...CONFIG, logRetainSlots: 4 };
    const h = harness(config);
    h.decide(...range(0, 10));
    expect(h.r.catchupFor(slot(0))).toEqual({ decisions: [], logStart: 6 });
    expect(h.r.catchupFor(slot(5))).toEqual({ decisions: [], logStart: 6 });
    const from6 = h.r.catchupFor(slot(6));
    expect(from6.logStart).toBe(6);
    expect(from6.decisions).toEqual(range(6, 10).map((s) => ({ slot: s, batch: batchOf(s) })));
  });
});

describe('Replica: catch-up replies', () => {
  it('sends the decisions it holds from the asked slot, from the log and then from memory, up to a gap', () => {
    const h = harness();
    h.decide(0, 1, 2, 4, 5, 7);
    const reply = h.r.catchupFor(slot(1));
    expect(reply.logStart).toBe(0);
    expect(reply.decisions).toEqual([1, 2].map((s) => ({ slot: s, batch: batchOf(s) })));
    expect(slotsOf(h.r.catchupFor(slot(4)).decisions)).toEqual([4, 5]);
    expect(h.r.catchupFor(slot(3)).decisions).toEqual([]);
    expect(h.r.catchupFor(slot(50)).decisions).toEqual([]);
  });

  it('sends at most maxCatchup decisions', () => {
    const h = harness({ ...CONFIG, maxCatchup: 3 });
    h.decide(...range(0, 10));
    expect(slotsOf(h.r.catchupFor(slot(0)).decisions)).toEqual([0, 1, 2]);
    expect(slotsOf(h.r.catchupFor(slot(8)).decisions)).toEqual([8, 9]);
  });

  it('sends at most maxCatchupBytes of batches, but always at least one decision', () => {
    // A 10-byte command costs 14 bytes (batchBytes counts 4 per command).
    const h = harness({ ...CONFIG, maxCatchupBytes: 30 });
    for (let s = 0; s < 5; s++) h.r.onDecision(slot(s), batchOf(s, 10));
    h.r.onDecision(slot(5), batchOf(5, 100));
    h.r.onDecision(slot(6), batchOf(6, 10));
    expect(slotsOf(h.r.catchupFor(slot(0)).decisions)).toEqual([0, 1]); // 28 bytes; a third would make 42
    expect(slotsOf(h.r.catchupFor(slot(3)).decisions)).toEqual([3, 4]);
    expect(slotsOf(h.r.catchupFor(slot(4)).decisions)).toEqual([4]); // 4 and 5 would be 118 bytes
    expect(slotsOf(h.r.catchupFor(slot(5)).decisions)).toEqual([5]); // alone past the bound: still sent
    const whole = h.r.catchupFor(slot(5)).decisions[0];
    expect(whole?.batch[0]?.length).toBe(100);
  });
});

describe('Replica: state transfer', () => {
  it('applies nothing between beginTransfer and finishTransfer, then resumes at the transferred slot', () => {
    const h = harness();
    h.decide(0, 1);
    h.r.beginTransfer(7);
    expect(h.r.transferInProgress()).toBe(7);
    // The transfer's mark is synced: it survives a crash.
    h.disk.crash();
    const meta = h.disk.getSync(META_SPACE, 'replica');
    expect(meta && records.decodeMeta(meta)).toEqual({ applied: 2, compactedBelow: 0, transferId: 7 });
    h.decide(2, 3, 20, 21, 22);
    expect(h.appliedSlots()).toEqual([0, 1]);
    expect(h.r.firstUnapplied()).toBe(2);
    // A replica whose state is partial serves no catch-up.
    expect(h.r.catchupFor(slot(0))).toEqual({ decisions: [], logStart: 0 });
    h.r.finishTransfer(slot(20));
    h.r.checkInvariants();
    expect(h.r.transferInProgress()).toBe(0);
    expect(h.r.firstUnapplied()).toBe(23);
    expect(h.r.logStart()).toBe(20);
    expect(h.appliedSlots()).toEqual([0, 1, 20, 21, 22]); // 2 and 3 are covered by the transferred state
    expect(h.logged()).toEqual([20, 21, 22]);
    const stored = h.disk.getSync(META_SPACE, 'replica');
    expect(stored && records.decodeMeta(stored)).toEqual({ applied: 23, compactedBelow: 20, transferId: 0 });
    h.decide(23);
    expect(h.r.firstUnapplied()).toBe(24);
  });

  it('resumes at `at` even when held decisions do not reach it, and takes the next decisions', () => {
    const h = harness();
    h.decide(0);
    h.r.beginTransfer(1);
    h.r.finishTransfer(slot(50));
    expect(h.r.firstUnapplied()).toBe(50);
    expect(h.r.logStart()).toBe(50);
    expect(h.logged()).toEqual([]);
    expect(h.r.catchupFor(slot(10))).toEqual({ decisions: [], logStart: 50 });
    h.decide(49, 51);
    expect(h.appliedSlots()).toEqual([0]);
    h.decide(50);
    expect(h.appliedSlots()).toEqual([0, 50, 51]);
  });

  it('resumes exactly at `at` even when it had applied further: the state is the one at `at`', () => {
    const h = harness();
    h.decide(0, 1, 2, 3, 4);
    h.r.beginTransfer(2);
    h.r.finishTransfer(slot(3));
    expect(h.r.firstUnapplied()).toBe(3);
    expect(h.r.logStart()).toBe(3);
    expect(h.logged()).toEqual([]);
    h.decide(3, 4); // the transferred state lacks them: applied again
    expect(h.appliedSlots()).toEqual([0, 1, 2, 3, 4, 3, 4]);
    expect(h.r.firstUnapplied()).toBe(5);
  });

  it('a transfer in progress survives a restart, and keeps the replica from applying', () => {
    const h = harness();
    h.decide(0);
    h.r.beginTransfer(3);
    h.decide(1, 2);
    const again = h.restart();
    expect(again.r.transferInProgress()).toBe(3);
    again.decide(3);
    expect(again.applied).toEqual([]);
    again.r.finishTransfer(slot(2));
    expect(again.appliedSlots()).toEqual([2, 3]);
    expect(again.r.firstUnapplied()).toBe(4);
  });

  it('refuses to finish a transfer it never began', () => {
    const h = harness();
    expect(() => h.r.finishTransfer(slot(5))).toThrow(/no transfer to finish/);
    expect(() => h.r.beginTransfer(0)).toThrow();
  });
});
