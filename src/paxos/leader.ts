// PMMC leader (section 3, fig. 7) with the section 4 liveness fixes: a leader
// is adopted once per ballot and then proposes without phase 1 until
// preempted; it heartbeats the group, and a follower starts its own scout only
// after missing heartbeats for a randomized number of ticks (so rivals rarely
// duel). Proposals are batched (many commands per slot) and pipelined (up to
// `window` slots in flight).
//
// Invariants: at most one commander per slot; every commander carries the
// current ballot; while active, no new command is proposed below a slot the
// quorum reported as compacted (such slots are decided already).
import { assert } from '../core/assert.js';
import { type Ballot, ballot, compareBallots, type NodeId, type Slot, slot } from '../core/ids.js';
import { mark } from '../core/marks.js';
import { Commander } from './commander.js';
import type { Batch, PaxosMessage, PValue } from './messages.js';
import { Scout } from './scout.js';

/**
 * Election timeouts an active leader goes without hearing a majority before it
 * resigns. Well past a follower's own timeout: under load a late answer must
 * not make the leader give up first (status already stops calling it leader).
 */
const RESIGN_AFTER_ELECTIONS = 5;

/** Ticks a scout or commander waits for answers before sending its P1a or P2a again. */
const RETRANSMIT_TICKS = 5;

/**
 * Election timeouts a follower keeps the commands it passed on (or held, with
 * no leader known): long enough to span the old leader's death and the next
 * election, so it hands them to the new leader at once instead of waiting
 * for the client's retry.
 */
const FORWARDED_KEEP_ELECTIONS = 4;

export interface LeaderConfig {
  readonly self: NodeId;
  readonly members: readonly NodeId[];
  /** Slots in flight at once. */
  readonly window: number;
  /** Commands per slot at most. */
  readonly maxBatch: number;
  /** Bytes of commands per slot at most (a larger command goes alone). */
  readonly maxBatchBytes: number;
  /** Bytes of commands waiting for a slot at most; past it new ones are dropped (their clients retry). */
  readonly maxPendingBytes: number;
  /** A follower waits between this and twice this many silent ticks before it runs for leader. */
  readonly electionTicks: number;
  /**
   * A scout older than this (by the clock, not ticks: a paused process must
   * not adopt on stale promises) does not adopt. rejoin.ts relies on it.
   */
  readonly maxScoutAgeMs: number;
}

export interface LeaderPorts {
  send(to: NodeId, m: PaxosMessage): void;
  random(): number;
  /** First slot the local replica has not applied: the floor of phase 1. */
  firstUnapplied(): Slot;
  /** Highest ballot the local acceptor promised: a new ballot goes above it. */
  promised(): Ballot;
  /** Whether this server may run for leader now (it is not far behind, nor rebuilding). */
  mayRun(): boolean;
  now(): number;
}

type Mode =
  | { readonly kind: 'follower' }
  /** Asking whether a majority would promise `ballot` before running with it (pre-vote). */
  | { readonly kind: 'prevoting'; readonly ballot: Ballot; readonly grants: Set<NodeId> }
  | { readonly kind: 'scouting'; readonly scout: Scout; readonly startedAtTick: number; readonly startedAtMs: number }
  | { readonly kind: 'active' };

export class Leader {
  private mode: Mode = { kind: 'follower' };
  private ballot: Ballot;
  /** Highest ballot heard from an active leader, and who that is. */
  private leaderBallot: Ballot;
  private readonly commanders = new Map<Slot, Commander>();
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Commands of our own clients passed to a leader (or held, none known), oldest first; at most maxPendingBytes. */
  private forwarded: { readonly command: Uint8Array; readonly atTick: number }[] = [];
  private forwardedBytes = 0;
  private nextSlot = slot(0);
  private tick = 0;
  private electionAtTick: number;
  private readonly majority: number;
  /** Tick at which each peer last showed it follows this ballot (a HeartbeatAck or a P2b). */
  private readonly heardAt = new Map<NodeId, number>();
  /** Tick of the last heartbeat this node followed: a pre-vote is refused while it is recent. */
  private heardLeaderAtTick = Number.NEGATIVE_INFINITY;
  /** Tick at which a majority was last known to follow: an active leader that goes without resigns. */
  private confirmedAtTick = 0;

  constructor(
    private readonly config: LeaderConfig,
    private readonly ports: LeaderPorts,
  ) {
    assert(config.members.includes(config.self), 'a leader is a member of its group');
    this.majority = Math.floor(config.members.length / 2) + 1;
    this.ballot = ports.promised();
    this.leaderBallot = this.ballot;
    this.electionAtTick = this.randomElectionTick();
  }

  isActive(): boolean {
    return this.mode.kind === 'active';
  }

  /**
   * Active, and a majority followed it within the election timeout: no other
   * leader can have been elected meanwhile without a member of that majority
   * having stopped answering. What status shows as leader.
   */
  leads(): boolean {
    return this.mode.kind === 'active' && this.majorityHeard();
  }

  /** The member believed to lead, if any. */
  knownLeader(): NodeId | undefined {
    if (this.mode.kind === 'active') return this.config.self;
    // Not itself: it resigned, or a restart forgot it led.
    return this.leaderBallot.round > 0 && this.leaderBallot.leader !== this.config.self ? this.leaderBallot.leader : undefined;
  }

  currentBallot(): Ballot {
    return this.ballot;
  }

  /** The highest ballot it has run with or heard from a leader. */
  highestBallot(): Ballot {
    return compareBallots(this.leaderBallot, this.ballot) > 0 ? this.leaderBallot : this.ballot;
  }

  /** Commands from a client of this server or a peer replica: propose them, or pass them to the leader. */
  propose(commands: Batch, from: NodeId): void {
    if (this.mode.kind === 'active') {
      for (const c of commands) {
        if (this.pendingBytes + c.length > this.config.maxPendingBytes) {
          mark('leader drops a command: pending queue full');
          continue;
        }
        this.pending.push(c);
        this.pendingBytes += c.length;
      }
      this.proposePending();
      return;
    }
    // Only a command from our own client travels on: no forwarding loops between stale followers.
    if (from !== this.config.self) return;
    for (const command of commands) this.keepForwarded(command);
    const leader = this.knownLeader();
    if (leader !== undefined && leader !== this.config.self) this.ports.send(leader, { type: 'Propose', commands });
  }

  onTick(): void {
    this.tick += 1;
    this.pruneForwarded();
    switch (this.mode.kind) {
      case 'active':
        if (this.majorityHeard()) this.confirmedAtTick = this.tick;
        else if (this.tick - this.confirmedAtTick > RESIGN_AFTER_ELECTIONS * this.config.electionTicks) {
          // Cut off from a majority: whoever they elect serves; our clients should go there.
          mark('leader resigns: no majority heard');
          this.resign();
          return;
        }
        this.heartbeat();
        this.retransmitP2a();
        return;
      case 'scouting':
        if (this.tick >= this.electionAtTick) this.run();
        else if ((this.tick - this.mode.startedAtTick) % RETRANSMIT_TICKS === 0) this.sendP1a(this.mode.scout);
        return;
      case 'prevoting':
      case 'follower':
        if (this.tick >= this.electionAtTick) this.run();
        return;
    }
  }

  onHeartbeat(b: Ballot): void {
    if (compareBallots(b, this.leaderBallot) < 0 || b.leader === this.config.self) return;
    if (compareBallots(b, this.leaderBallot) > 0) this.forwardAgain(b.leader);
    this.leaderBallot = b;
    this.heardLeaderAtTick = this.tick;
    this.electionAtTick = this.randomElectionTick();
    if (this.mode.kind === 'prevoting') this.mode = { kind: 'follower' };
    if (compareBallots(b, this.ballot) > 0) this.stepDown(b);
  }

  /**
   * Whether this node would let another run for leader now: not while it
   * leads a majority, nor within an election timeout of a heartbeat it
   * followed. So a node back from a restart, or cut off for a while, cannot
   * depose a leader the others still hear (Raft's pre-vote, 9.6).
   */
  grantsPreVote(): boolean {
    if (this.leads()) return false;
    return this.tick - this.heardLeaderAtTick > this.config.electionTicks;
  }

  onPreVoteAck(from: NodeId, b: Ballot, granted: boolean): void {
    if (this.mode.kind !== 'prevoting' || compareBallots(b, this.mode.ballot) !== 0 || !granted) return;
    this.mode.grants.add(from);
    if (this.mode.grants.size >= this.majority) this.startScout(this.mode.ballot);
  }

  /** A follower's answer to a heartbeat: the ballot its acceptor promised. */
  onHeartbeatAck(from: NodeId, promised: Ballot): void {
    if (this.mode.kind !== 'active') return;
    // Promised higher: deposed. Lower or equal: it would accept our P2a, so it follows us.
    if (compareBallots(promised, this.ballot) > 0) this.stepDown(promised);
    else this.heardAt.set(from, this.tick);
  }

  onP1b(from: NodeId, m: Extract<PaxosMessage, { type: 'P1b' }>): void {
    if (this.mode.kind !== 'scouting') return;
    const scout = this.mode.scout;
    // An acceptor answering page after page is progress: do not start over with a new ballot meanwhile.
    if (compareBallots(m.ballot, scout.ballot) === 0) this.electionAtTick = Math.max(this.electionAtTick, this.tick + this.config.electionTicks);
    const outcome = scout.onP1b(from, m);
    switch (outcome.kind) {
      case 'waiting':
        return;
      case 'more':
        this.ports.send(from, { type: 'P1a', ballot: scout.ballot, fromSlot: outcome.from });
        return;
      case 'preempted':
        this.stepDown(outcome.by);
        return;
      case 'adopted':
        if (this.ports.now() - this.mode.startedAtMs > this.config.maxScoutAgeMs) {
          mark('leader does not adopt on promises older than maxScoutAgeMs');
          this.run();
          return;
        }
        this.adopt(this.mode.scout.fromSlot, outcome.pvalues, outcome.compactedBelow);
        return;
    }
  }

  /** Returns the decided pvalue when this answer completes a majority. */
  /** The decided pvalue, with the acceptors known to hold it, once `s` is decided. */
  onP2b(from: NodeId, b: Ballot, s: Slot): { pvalue: PValue; acceptedBy: readonly NodeId[] } | undefined {
    const c = this.commanders.get(s);
    if (this.mode.kind === 'active' && compareBallots(b, this.ballot) === 0) this.heardAt.set(from, this.tick);
    if (c === undefined || this.mode.kind !== 'active') return undefined;
    const outcome = c.onP2b(from, b);
    switch (outcome.kind) {
      case 'waiting':
        return undefined;
      case 'preempted':
        this.stepDown(outcome.by);
        return undefined;
      case 'decided':
        this.commanders.delete(s);
        this.proposePending();
        return { pvalue: c.pvalue, acceptedBy: c.acceptedBy() };
    }
  }

  /** The local replica learned `s`: no commander needs to finish it. */
  onLearned(s: Slot): void {
    if (this.commanders.delete(s)) this.proposePending();
  }

  /**
   * The local replica caught up, perhaps from a peer's snapshot: ends the
   * commanders of every slot it has now applied. Slots a snapshot covers are
   * never reported one by one, and acceptors no longer answer for compacted
   * slots, so such a commander would hold its place in the window forever.
   */
  onCaughtUp(): void {
    const applied = this.ports.firstUnapplied();
    for (const s of this.commanders.keys()) {
      if (s >= applied) continue;
      mark('leader drops a commander for an applied slot');
      this.commanders.delete(s);
    }
    this.proposePending();
  }

  checkInvariants(): void {
    for (const [s, c] of this.commanders) {
      assert(c.pvalue.slot === s, 'commander filed under another slot');
      assert(compareBallots(c.pvalue.ballot, this.ballot) === 0, 'commander of an old ballot');
    }
    if (this.mode.kind !== 'active') assert(this.commanders.size === 0, 'commanders without an active leader');
  }

  /** The election timeout passed: run (through a pre-vote) unless this node may not. */
  private run(): void {
    if (this.ports.mayRun()) {
      this.startPreVote();
      return;
    }
    mark('lagging follower does not run for leader');
    this.mode = { kind: 'follower' };
    this.commanders.clear();
    this.electionAtTick = this.randomElectionTick();
  }

  /** Asks the peers whether they would promise the next ballot; runs once a majority (itself included) would. */
  private startPreVote(): void {
    const round = Math.max(this.ballot.round, this.leaderBallot.round, this.ports.promised().round) + 1;
    const next = ballot(round, this.config.self);
    this.mode = { kind: 'prevoting', ballot: next, grants: new Set([this.config.self]) };
    this.commanders.clear();
    this.electionAtTick = this.randomElectionTick();
    if (this.mode.grants.size >= this.majority) {
      this.startScout(next);
      return;
    }
    const appliedBelow = this.ports.firstUnapplied();
    for (const m of this.config.members) if (m !== this.config.self) this.ports.send(m, { type: 'PreVote', ballot: next, appliedBelow });
  }

  private startScout(b: Ballot): void {
    // The promise may have moved since the pre-vote: stay above it.
    const round = Math.max(b.round, this.ports.promised().round + 1);
    this.ballot = ballot(round, this.config.self);
    const scout = new Scout(this.ballot, this.ports.firstUnapplied(), this.majority);
    this.mode = { kind: 'scouting', scout, startedAtTick: this.tick, startedAtMs: this.ports.now() };
    this.commanders.clear();
    this.electionAtTick = this.randomElectionTick();
    this.sendP1a(scout);
  }

  private sendP1a(scout: Scout): void {
    for (const [a, fromSlot] of scout.missing(this.config.members)) {
      this.ports.send(a, { type: 'P1a', ballot: scout.ballot, fromSlot });
    }
  }

  /** Phase 1 won: re-propose what a quorum accepted (no-ops in the gaps), then serve. */
  private adopt(fromSlot: Slot, pvalues: ReadonlyMap<Slot, PValue>, compactedBelow: Slot): void {
    mark('leader adopted');
    if (this.mode.kind === 'scouting') for (const m of this.mode.scout.promisers()) this.heardAt.set(m, this.tick);
    this.confirmedAtTick = this.tick;
    this.mode = { kind: 'active' };
    this.leaderBallot = this.ballot;
    const start = Math.max(fromSlot, compactedBelow);
    if (pvalues.size > 0) mark('leader re-proposes accepted values');
    let end = start;
    for (const s of pvalues.keys()) if (s >= end) end = s + 1;
    for (let s = start; s < end; s++) {
      const accepted = pvalues.get(slot(s));
      if (accepted === undefined) mark('leader fills a gap with a no-op');
      this.command(slot(s), accepted?.batch ?? []);
    }
    // Exactly where the quorum's knowledge ends: a slot this leader proposed in an
    // earlier term that no quorum member accepted must be proposed again, not skipped.
    this.nextSlot = slot(end);
    this.heartbeat();
    // What our clients sent while another led (or none did) may have died with that leader: ours to propose now.
    for (const { command } of this.forwarded) {
      if (this.pendingBytes + command.length > this.config.maxPendingBytes) break;
      this.pending.push(command);
      this.pendingBytes += command.length;
    }
    this.forwarded = [];
    this.forwardedBytes = 0;
    this.proposePending();
  }

  private proposePending(): void {
    while (this.pending.length > 0 && this.commanders.size < this.config.window) {
      const batch = this.takeBatch();
      const s = this.nextSlot;
      this.nextSlot = slot(s + 1);
      this.command(s, batch);
    }
  }

  private command(s: Slot, batch: Batch): void {
    const c = new Commander({ slot: s, ballot: this.ballot, batch }, this.majority, this.tick);
    this.commanders.set(s, c);
    for (const a of this.config.members) this.ports.send(a, { type: 'P2a', pvalue: c.pvalue });
  }

  /** P2a again to acceptors silent for RETRANSMIT_TICKS: every tick would flood a follower busy syncing large values. */
  private retransmitP2a(): void {
    for (const c of this.commanders.values()) {
      if (c.sentAtTick > this.tick - RETRANSMIT_TICKS) continue;
      c.sentAtTick = this.tick;
      for (const a of c.missing(this.config.members)) this.ports.send(a, { type: 'P2a', pvalue: c.pvalue });
    }
  }

  private heartbeat(): void {
    for (const m of this.config.members) {
      if (m !== this.config.self) {
        this.ports.send(m, { type: 'Heartbeat', ballot: this.ballot, decidedBelow: this.ports.firstUnapplied() });
      }
    }
  }

  private majorityHeard(): boolean {
    let heard = 1; // itself
    for (const [m, at] of this.heardAt) if (m !== this.config.self && this.tick - at <= this.config.electionTicks) heard++;
    return heard >= this.majority;
  }

  /** Stops leading without a known successor; clients retry elsewhere. */
  private resign(): void {
    this.mode = { kind: 'follower' };
    this.commanders.clear();
    this.pending = [];
    this.pendingBytes = 0;
    this.electionAtTick = this.randomElectionTick();
  }

  /** Preempted by `by`: follow its leader; hand it what we had not proposed yet. */
  private stepDown(by: Ballot): void {
    if (compareBallots(by, this.ballot) <= 0) return;
    if (this.mode.kind === 'active') mark('active leader preempted');
    if (compareBallots(by, this.leaderBallot) > 0) {
      this.leaderBallot = by;
      if (by.leader !== this.config.self) this.forwardAgain(by.leader);
    }
    this.mode = { kind: 'follower' };
    this.commanders.clear();
    // Hand the new leader what we had not proposed, in messages of a slot's size each.
    while (this.pending.length > 0 && by.leader !== this.config.self) {
      this.ports.send(by.leader, { type: 'Propose', commands: this.takeBatch() });
    }
    this.pending = [];
    this.pendingBytes = 0;
    this.electionAtTick = this.randomElectionTick();
  }

  /** Remembers a command of our own client, dropping the oldest past the byte bound. */
  private keepForwarded(command: Uint8Array): void {
    this.forwarded.push({ command, atTick: this.tick });
    this.forwardedBytes += command.length;
    while (this.forwardedBytes > this.config.maxPendingBytes) {
      const oldest = this.forwarded.shift();
      assert(oldest !== undefined, 'forwarded bytes count only kept commands');
      this.forwardedBytes -= oldest.command.length;
    }
  }

  private pruneForwarded(): void {
    const keepFrom = this.tick - FORWARDED_KEEP_ELECTIONS * this.config.electionTicks;
    while (this.forwarded.length > 0 && (this.forwarded[0]?.atTick ?? keepFrom) < keepFrom) {
      const oldest = this.forwarded.shift();
      assert(oldest !== undefined);
      this.forwardedBytes -= oldest.command.length;
    }
  }

  /**
   * A new leader: hand it the recent commands of our clients. Those the old
   * leader decided come back as duplicates, which the exactly-once table
   * answers without applying twice; those it lost are not lost.
   */
  private forwardAgain(leader: NodeId): void {
    if (this.forwarded.length === 0) return;
    mark('follower hands recent commands to a new leader');
    for (let i = 0; i < this.forwarded.length; ) {
      let bytes = 0;
      const batch: Uint8Array[] = [];
      for (; i < this.forwarded.length && batch.length < this.config.maxBatch; i++) {
        const c = this.forwarded[i]?.command;
        assert(c !== undefined);
        if (batch.length > 0 && bytes + c.length > this.config.maxBatchBytes) break;
        batch.push(c);
        bytes += c.length;
      }
      this.ports.send(leader, { type: 'Propose', commands: batch });
    }
  }

  /** The next slot's commands: up to `maxBatch` of them and `maxBatchBytes`, at least one. */
  private takeBatch(): Batch {
    let n = 0;
    let bytes = 0;
    while (n < this.pending.length && n < this.config.maxBatch) {
      const c = this.pending[n];
      assert(c !== undefined);
      if (n > 0 && bytes + c.length > this.config.maxBatchBytes) break;
      bytes += c.length;
      n += 1;
    }
    this.pendingBytes -= bytes;
    return this.pending.splice(0, n);
  }

  private randomElectionTick(): number {
    const t = this.config.electionTicks;
    return this.tick + t + Math.floor(this.ports.random() * (t + 1));
  }
}
