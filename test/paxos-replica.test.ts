// Replica unit tests, fed decisions and catch-up replies directly.
import { describe, expect, it } from 'vitest';
import { type NodeId, nodeId, seq, sessionId, slot } from '../src/core/ids.js';
import type { StorageWrite } from '../src/core/storage.js';
import { emptyState } from '../src/core/storage.js';
import { AmoApplication } from '../src/rpc/amo-application.js';
import type { AmoResult } from '../src/rpc/messages.js';
import type { Batch } from '../src/paxos/messages.js';
import { Replica } from '../src/paxos/replica.js';
import { Counter, INCREMENT } from './support/counter.js';

function replica() {
  const writes: StorageWrite[] = [];
  const replies: Array<[NodeId, AmoResult]> = [];
  const counter = new Counter();
  const r = new Replica(
    new AmoApplication(counter),
    { snapshotEvery: 1000, maxCatchup: 100, maxWaiting: 100 },
    {
      persist: (...w) => writes.push(...w),
      persistUnsynced: (...w) => writes.push(...w),
      reply: (to, res) => replies.push([to, res]),
    },
    emptyState(),
  );
  return { r, writes, replies, counter };
}

const noop: Batch = [];

describe('Replica', () => {
  it('applies decisions in slot order, whatever order they arrive in', () => {
    const { r } = replica();
    r.onDecision(slot(1), noop);
    r.onDecision(slot(2), noop);
    expect(r.firstUnapplied()).toBe(0);
    r.onDecision(slot(0), noop);
    expect(r.firstUnapplied()).toBe(3);
  });

  it('after installing a snapshot, applies decisions it already held past it', () => {
    // A restarted replica can learn slots past a peer's snapshot (say, by
    // leading their re-proposal) before the catch-up that brings the snapshot.
    const snapshotState = new AmoApplication(new Counter()).snapshot();
    const lagging = replica();
    for (let s = 30; s < 40; s++) lagging.r.onDecision(slot(s), noop);
    expect(lagging.r.firstUnapplied()).toBe(0);
    lagging.r.onCatchup(
      Array.from({ length: 10 }, (_, i) => ({ slot: slot(30 + i), batch: noop })),
      { slot: slot(30), state: snapshotState },
    );
    expect(lagging.r.firstUnapplied()).toBe(40);
    expect(lagging.r.compactedBelow()).toBe(30);
  });

  it('answers a duplicate of an applied request from the cache, without proposing it', () => {
    const { r, replies } = replica();
    r.onDecision(slot(0), [{ kind: 'register', nonce: 7 }]);
    const req = { kind: 'request' as const, session: sessionId(1), seq: seq(0), ackedBelow: seq(0), command: INCREMENT };
    r.onDecision(slot(1), [req]);
    expect(r.admit(nodeId('c'), req)).toBe(false);
    expect(replies.at(-1)?.[1]).toMatchObject({ kind: 'result', seq: 0 });
  });
});
