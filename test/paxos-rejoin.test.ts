// Rejoin unit tests: when a rebuilt acceptor may vote again.
import { describe, expect, it } from 'vitest';
import { type Ballot, ballot, nodeId, slot } from '../src/core/ids.js';
import type { PaxosMessage } from '../src/paxos/messages.js';
import { Rejoin } from '../src/paxos/rejoin.js';

const [a, b, c] = [nodeId('a'), nodeId('b'), nodeId('c')];

function harness(rebuilding = true) {
  const sent: Array<{ to: string; m: PaxosMessage }> = [];
  const w = { now: 0, highest: ballot(4, b), applied: 0, finished: undefined as Ballot | undefined };
  const r = new Rejoin(
    { self: a, members: [a, b, c], quietMs: 1000 },
    {
      send: (to, m) => sent.push({ to, m }),
      now: () => w.now,
      highestBallot: () => w.highest,
      firstUnapplied: () => slot(w.applied),
      finish: (f) => (w.finished = f),
    },
    rebuilding,
  );
  const fences = () => sent.filter((x) => x.m.type === 'Fence');
  return { r, sent, w, fences };
}

describe('Rejoin', () => {
  it('waits out the quiet period, fences above every ballot heard, and votes once caught up to the bound', () => {
    const { r, w, fences } = harness();
    r.onTick();
    expect(fences()).toEqual([]);
    w.now = 1000;
    r.onTick();
    expect(fences().map((x) => x.to)).toEqual([b, c]);
    const f = ballot(5, a);
    expect(fences()[0]?.m).toEqual({ type: 'Fence', ballot: f });
    r.onAck(b, f, slot(40));
    expect(r.active).toBe(true); // a majority of the group among its peers: both of them
    r.onAck(c, f, slot(25));
    expect(r.describe()).toContain('catching up to slot 40');
    w.applied = 39;
    r.onTick();
    expect(w.finished).toBeUndefined();
    w.applied = 40;
    r.onTick();
    expect(w.finished).toEqual(f);
    expect(r.active).toBe(false);
  });

  it('fences again above a peer that promised a higher ballot, and ignores acks to an older fence', () => {
    const { r, w, fences } = harness();
    w.now = 2000;
    r.onTick();
    w.highest = ballot(9, c);
    r.onAck(b, ballot(9, c), slot(3));
    const second = fences().at(-1)?.m;
    expect(second).toEqual({ type: 'Fence', ballot: ballot(10, a) });
    r.onAck(c, ballot(5, a), slot(3)); // the first fence's
    r.onAck(b, ballot(10, a), slot(3));
    expect(r.active).toBe(true);
    r.onAck(c, ballot(10, a), slot(3));
    w.applied = 3;
    r.onTick();
    expect(w.finished).toEqual(ballot(10, a));
  });

  it('sends the fence again to peers that have not answered', () => {
    const { r, w, fences } = harness();
    w.now = 1000;
    r.onTick();
    r.onAck(b, ballot(5, a), slot(0));
    for (let i = 0; i < 5; i++) r.onTick();
    expect(fences().slice(2).map((x) => x.to)).toEqual([c]);
  });

  it('is done at once for a node that did not lose its disk', () => {
    expect(harness(false).r.active).toBe(false);
  });
});

describe('Rejoin, answered with a higher promise than it heard of', () => {
  it('fences above that promise, not again at the same ballot', () => {
    const { r, w, fences } = harness();
    w.now = 1000;
    r.onTick();
    r.onAck(b, ballot(7, c), slot(0)); // w.highest stays at 4: nothing else told it of round 7
    expect(fences().at(-1)?.m).toEqual({ type: 'Fence', ballot: ballot(8, a) });
  });
});
