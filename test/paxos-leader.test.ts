// Leader unit tests, fed P1b/P2b answers directly.
import { describe, expect, it } from 'vitest';
import { BOTTOM_BALLOT, type Ballot, ballot, type NodeId, nodeId, slot } from '../src/core/ids.js';
import { Leader } from '../src/paxos/leader.js';
import type { PaxosMessage, PValue } from '../src/paxos/messages.js';
import { Scout } from '../src/paxos/scout.js';

const [a, b, c] = [nodeId('a'), nodeId('b'), nodeId('c')];
/** An opaque command: Paxos never looks inside. */
const cmd = (n: number): Uint8Array => new Uint8Array([n & 0xff, 1, 2, 3]);

function p1b(bal: Ballot, fromSlot: number, accepted: PValue[], next: number | undefined, compactedBelow = 0) {
  return { type: 'P1b', ballot: bal, fromSlot: slot(fromSlot), accepted, next: next === undefined ? undefined : slot(next), compactedBelow: slot(compactedBelow) } as const;
}

const pv = (s: number, bal: Ballot, n: number): PValue => ({ slot: slot(s), ballot: bal, batch: [cmd(n)] });

function leader() {
  const sent: Array<{ to: NodeId; m: PaxosMessage }> = [];
  let promised: Ballot = BOTTOM_BALLOT;
  const replica = { applied: 0 };
  const l = new Leader(
    { self: a, members: [a, b, c], window: 8, maxBatch: 4, maxBatchBytes: 1024, maxPendingBytes: 1 << 20, electionTicks: 1, maxScoutAgeMs: 5_000 },
    {
      send: (to, m) => sent.push({ to, m }),
      random: () => 0,
      firstUnapplied: () => slot(replica.applied),
      promised: () => promised,
      mayRun: () => true,
      now: () => 0,
    },
  );
  /** Ticks until it asks for a pre-vote, grants it, then lets b and c promise with nothing accepted. */
  const elect = () => {
    for (let i = 0; i < 3 && !sent.some((x) => x.m.type === 'PreVote'); i++) l.onTick();
    const pre = sent.find((x) => x.m.type === 'PreVote')?.m;
    if (pre?.type !== 'PreVote') throw new Error('no PreVote');
    l.onPreVoteAck(b, pre.ballot, true);
    const p1a = sent.find((x) => x.m.type === 'P1a')?.m;
    if (p1a?.type !== 'P1a') throw new Error('no P1a');
    sent.length = 0;
    promised = p1a.ballot;
    for (const from of [b, c]) l.onP1b(from, p1b(p1a.ballot, 0, [], undefined));
    return p1a.ballot;
  };
  const p2aSlots = () => [...new Set(sent.flatMap((x) => (x.m.type === 'P2a' ? [x.m.pvalue.slot] : [])))];
  return { l, sent, elect, p2aSlots, replica };
}

describe('Leader', () => {
  it('proposes again, after re-election, the slots its old proposals never got accepted in', () => {
    const { l, sent, elect, p2aSlots } = leader();
    elect();
    expect(l.isActive()).toBe(true);
    l.propose([cmd(1)], a);
    l.propose([cmd(2)], a);
    expect(p2aSlots()).toEqual([0, 1]);
    // Preempted before anyone accepted slots 0 and 1.
    l.onHeartbeat(ballot(50, b));
    expect(l.isActive()).toBe(false);
    sent.length = 0;
    // Later elected again; the quorum reports nothing accepted: slot 0 is where to go on.
    for (let i = 0; i < 5 && !l.isActive(); i++) {
      sent.length = 0;
      elect();
    }
    expect(l.isActive()).toBe(true);
    sent.length = 0;
    l.propose([cmd(3)], a);
    expect(p2aSlots()).toEqual([0]);
  });

  it('frees its window when the local replica jumps past its slots by a state transfer', () => {
    const { l, elect, sent, p2aSlots, replica } = leader();
    elect();
    for (let n = 0; n < 8; n++) l.propose([cmd(n)], a);
    sent.length = 0;
    l.propose([cmd(99)], a);
    expect(p2aSlots()).toEqual([]); // the window is full
    // A transferred state covers slots 0..9; no acceptor will answer for them any more.
    replica.applied = 10;
    l.onCaughtUp();
    expect(p2aSlots()).toEqual([8]);
  });

  it('batches commands that wait for a full window into one slot', () => {
    const { l, elect, sent, p2aSlots } = leader();
    elect();
    for (let n = 0; n < 8; n++) l.propose([cmd(n)], a);
    expect(p2aSlots()).toHaveLength(8);
    sent.length = 0;
    for (let n = 8; n < 12; n++) l.propose([cmd(n)], a);
    expect(p2aSlots()).toEqual([]);
    const cur = l.currentBallot();
    for (const from of [b, c]) l.onP2b(from, cur, slot(0));
    const batch = sent.find((x) => x.m.type === 'P2a' && x.m.pvalue.slot === 8)?.m;
    expect(batch?.type === 'P2a' ? batch.pvalue.batch.length : 0).toBe(4);
  });

  it('cuts a slot at maxBatchBytes, but a larger command still goes alone', () => {
    const { l, elect, sent } = leader();
    elect();
    for (let n = 0; n < 8; n++) l.propose([cmd(n)], a);
    sent.length = 0;
    const big = new Uint8Array(2000);
    l.propose([new Uint8Array(600), new Uint8Array(600), big], a);
    const cur = l.currentBallot();
    for (let s = 0; s < 3; s++) for (const from of [b, c]) l.onP2b(from, cur, slot(s));
    const bySlot = new Map<number, number[]>();
    for (const x of sent) if (x.m.type === 'P2a' && x.m.pvalue.slot >= 8) bySlot.set(x.m.pvalue.slot, x.m.pvalue.batch.map((c) => c.length));
    expect([...bySlot.values()]).toEqual([[600], [600], [2000]]);
  });

  it('does not run for leader while it may not (a lagging replica)', () => {
    const sent: Array<{ to: NodeId; m: PaxosMessage }> = [];
    const l = new Leader(
      { self: a, members: [a, b, c], window: 8, maxBatch: 4, maxBatchBytes: 1024, maxPendingBytes: 1 << 20, electionTicks: 1, maxScoutAgeMs: 5_000 },
      { send: (to, m) => sent.push({ to, m }), random: () => 0, firstUnapplied: () => slot(0), promised: () => BOTTOM_BALLOT, mayRun: () => false, now: () => 0 },
    );
    for (let i = 0; i < 20; i++) l.onTick();
    expect(sent.filter((x) => x.m.type === 'P1a')).toEqual([]);
  });

  it("hands its clients' recent commands to a new leader, and proposes them itself when it wins", () => {
    const sent: Array<{ to: NodeId; m: PaxosMessage }> = [];
    let promised: Ballot = BOTTOM_BALLOT;
    let mayRun = false;
    const l = new Leader(
      { self: a, members: [a, b, c], window: 8, maxBatch: 4, maxBatchBytes: 1024, maxPendingBytes: 1 << 20, electionTicks: 4, maxScoutAgeMs: 5_000 },
      { send: (to, m) => sent.push({ to, m }), random: () => 0, firstUnapplied: () => slot(0), promised: () => promised, mayRun: () => mayRun, now: () => 0 },
    );
    const proposedTo = (to: NodeId) => sent.flatMap((x) => (x.to === to && x.m.type === 'Propose' ? x.m.commands.map((k) => k[0]) : []));
    l.onHeartbeat(ballot(1, b));
    l.propose([cmd(1)], a);
    l.propose([cmd(7)], b); // a peer's command: never kept, never passed on
    expect(proposedTo(b)).toEqual([1]);
    // b dies with command 1 unproposed; c wins: command 1 goes to c without waiting for the client.
    l.onHeartbeat(ballot(2, c));
    expect(proposedTo(c)).toEqual([1]);
    l.onHeartbeat(ballot(2, c)); // the same leader again: nothing new to hand over
    expect(proposedTo(c)).toEqual([1]);
    // Past FORWARDED_KEEP_ELECTIONS election timeouts a command is forgotten.
    l.propose([cmd(2)], a);
    for (let i = 0; i < 4 * 4 + 1; i++) {
      l.onTick();
      l.onHeartbeat(ballot(2, c));
    }
    l.propose([cmd(3)], a);
    l.onHeartbeat(ballot(3, b));
    expect(proposedTo(b)).toEqual([1, 3]);
    // No leader known while it runs itself: command 4 waits, then goes into its first slots.
    sent.length = 0;
    mayRun = true;
    l.propose([cmd(4)], a);
    for (let i = 0; i < 20 && !sent.some((x) => x.m.type === 'PreVote'); i++) l.onTick();
    const pre = sent.find((x) => x.m.type === 'PreVote')?.m;
    if (pre?.type !== 'PreVote') throw new Error('no PreVote');
    l.onPreVoteAck(b, pre.ballot, true);
    const p1a = sent.find((x) => x.m.type === 'P1a')?.m;
    if (p1a?.type !== 'P1a') throw new Error('no P1a');
    promised = p1a.ballot;
    for (const from of [b, c]) l.onP1b(from, p1b(p1a.ballot, 0, [], undefined));
    expect(l.isActive()).toBe(true);
    const proposed = sent.flatMap((x) => (x.m.type === 'P2a' && x.to === b ? x.m.pvalue.batch.map((k) => k[0]) : []));
    expect(proposed).toEqual([3, 4]);
  });
});

describe('Scout', () => {
  const bal = ballot(5, a);
  const old = ballot(3, b);

  it('counts an acceptor only once every page of its answer has arrived', () => {
    const s = new Scout(bal, slot(10), 2);
    expect(s.onP1b(b, p1b(bal, 10, [pv(10, old, 1)], 11))).toEqual({ kind: 'more', from: 11 });
    expect(s.missing([a, b, c])).toEqual([[a, 10], [b, 11], [c, 10]]);
    expect(s.onP1b(c, p1b(bal, 10, [], undefined)).kind).toBe('waiting');
    // b's last page brings a value from a later slot: adopted with both pages merged.
    const out = s.onP1b(b, p1b(bal, 11, [pv(12, old, 2)], undefined));
    expect(out.kind).toBe('adopted');
    if (out.kind === 'adopted') expect([...out.pvalues.keys()]).toEqual([10, 12]);
  });

  it('does not count a page that skips one it never got, nor a late duplicate', () => {
    const s = new Scout(bal, slot(0), 2);
    expect(s.onP1b(b, p1b(bal, 0, [pv(0, old, 1)], 1)).kind).toBe('more');
    // The page from 1 on was lost; an answer from 5 on does not complete b.
    expect(s.onP1b(b, p1b(bal, 5, [], undefined)).kind).toBe('waiting');
    // A late duplicate of the first page changes nothing.
    expect(s.onP1b(b, p1b(bal, 0, [pv(0, old, 1)], 1)).kind).toBe('waiting');
    expect(s.onP1b(c, p1b(bal, 0, [], undefined)).kind).toBe('waiting');
    expect(s.missing([a, b, c])).toEqual([[a, 0], [b, 1]]);
    expect(s.onP1b(b, p1b(bal, 1, [pv(3, old, 2)], undefined)).kind).toBe('adopted');
  });

  it('is preempted by a higher ballot in any page', () => {
    const s = new Scout(bal, slot(0), 2);
    expect(s.onP1b(b, p1b(bal, 0, [pv(0, old, 1)], 1)).kind).toBe('more');
    expect(s.onP1b(b, p1b(ballot(6, c), 1, [], undefined))).toEqual({ kind: 'preempted', by: ballot(6, c) });
  });

  it('the leader asks again from where a page stopped', () => {
    const { l, sent } = leader();
    for (let i = 0; i < 3 && !sent.some((x) => x.m.type === 'PreVote'); i++) l.onTick();
    const pre = sent.find((x) => x.m.type === 'PreVote')?.m;
    if (pre?.type !== 'PreVote') throw new Error('no PreVote');
    l.onPreVoteAck(b, pre.ballot, true);
    const p1a = sent.find((x) => x.m.type === 'P1a')?.m;
    if (p1a?.type !== 'P1a') throw new Error('no P1a');
    sent.length = 0;
    l.onP1b(b, p1b(p1a.ballot, 0, [pv(0, old, 1)], 1));
    expect(sent).toEqual([{ to: b, m: { type: 'P1a', ballot: p1a.ballot, fromSlot: 1 } }]);
  });
});

describe('pre-vote', () => {
  it('runs only once a majority would promise, and a refusal or a heartbeat stops it', () => {
    const { l, sent } = leader();
    for (let i = 0; i < 3 && !sent.some((x) => x.m.type === 'PreVote'); i++) l.onTick();
    const pre = sent.find((x) => x.m.type === 'PreVote')?.m;
    if (pre?.type !== 'PreVote') throw new Error('no PreVote');
    expect(sent.filter((x) => x.m.type === 'P1a')).toEqual([]);
    l.onPreVoteAck(b, pre.ballot, false);
    l.onPreVoteAck(c, pre.ballot, false);
    expect(sent.filter((x) => x.m.type === 'P1a'), 'refused: no scout, no ballot spent').toEqual([]);
    expect(l.currentBallot().round).toBe(0);
    l.onHeartbeat(ballot(3, c));
    l.onPreVoteAck(b, pre.ballot, true);
    expect(sent.filter((x) => x.m.type === 'P1a'), 'a leader was heard: the pre-vote is over').toEqual([]);
  });

  it('is refused within an election timeout of a heartbeat, and granted after', () => {
    const { l } = leader();
    l.onHeartbeat(ballot(3, c));
    expect(l.grantsPreVote()).toBe(false);
    l.onTick();
    expect(l.grantsPreVote()).toBe(false);
    l.onTick();
    expect(l.grantsPreVote()).toBe(true); // electionTicks is 1 here
  });
});
