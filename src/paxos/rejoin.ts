// How an acceptor that lost its disk becomes a voter again (DESIGN.md 2.1;
// Chandra, Griesemer, Redstone, "Paxos Made Live", 5.1, made precise for
// multi-Paxos). Before the loss it may have promised any ballot and accepted
// any value; voting as if it had not would let two values be chosen. So, while
// its replica catches up by streaming:
//
// 1. It waits `quietMs` after it starts. A leader never adopts on promises
//    older than `maxScoutAgeMs` (leader.ts), and quietMs is twice that: by
//    then every phase 1 that counted one of its lost promises has adopted or
//    died. (A timing assumption, as a lease's: clocks run at nearly the same rate.)
// 2. It fences: a ballot F above every ballot it has heard, promised by a
//    majority of its peers (itself not counted). Each of them promised any
//    ballot adopted with one of its lost promises before F, so F is above them
//    all; and any value chosen with its lost vote was accepted by one of them.
// 3. Their acks bound every slot they hold a value for: no value chosen with
//    its lost vote lies above that bound. It votes (promised F) once its replica
//    has applied every slot below the bound, so its P1b reports them compacted
//    (decided) and no leader fills them from its empty memory.
//
// The fence deposes the current leader; the group elects again (rebuilds are rare).
import { BOTTOM_BALLOT, type Ballot, ballot, compareBallots, maxBallot, type NodeId, type Slot, slot } from '../core/ids.js';
import { mark } from '../core/marks.js';
import type { PaxosMessage } from './messages.js';

/** Ticks between fences sent again to peers that have not answered. */
const RETRANSMIT_TICKS = 5;

export interface RejoinConfig {
  readonly self: NodeId;
  readonly members: readonly NodeId[];
  readonly quietMs: number;
}

export interface RejoinPorts {
  send(to: NodeId, m: PaxosMessage): void;
  now(): number;
  /** The highest ballot this node has heard of. */
  highestBallot(): Ballot;
  firstUnapplied(): Slot;
  /** The acceptor votes again, promised to `fence`. */
  finish(fence: Ballot): void;
}

type State =
  | { readonly kind: 'quiet'; readonly until: number }
  | { readonly kind: 'fencing'; readonly fence: Ballot; readonly acks: Map<NodeId, Slot>; sentAtTick: number }
  | { readonly kind: 'catching-up'; readonly fence: Ballot; readonly bound: Slot }
  | { readonly kind: 'done' };

export class Rejoin {
  private state: State;
  private tick = 0;
  /** The highest promise a peer answered a fence with: the next fence goes above it. */
  private answered: Ballot = BOTTOM_BALLOT;
  private readonly peers: readonly NodeId[];
  private readonly majority: number;

  constructor(
    private readonly config: RejoinConfig,
    private readonly ports: RejoinPorts,
    rebuilding: boolean,
  ) {
    this.peers = config.members.filter((m) => m !== config.self);
    this.majority = Math.floor(config.members.length / 2) + 1;
    this.state = rebuilding ? { kind: 'quiet', until: ports.now() + config.quietMs } : { kind: 'done' };
  }

  /** Whether the acceptor may not vote yet. */
  get active(): boolean {
    return this.state.kind !== 'done';
  }

  /** What status shows. */
  describe(): string {
    const s = this.state;
    switch (s.kind) {
      case 'quiet':
        return 'rebuilding: waiting out old promises';
      case 'fencing':
        return `rebuilding: fencing ballot ${s.fence.round} (${s.acks.size}/${this.majority} peers)`;
      case 'catching-up':
        return `rebuilding: catching up to slot ${s.bound}`;
      case 'done':
        return '';
    }
  }

  onTick(): void {
    this.tick += 1;
    const s = this.state;
    switch (s.kind) {
      case 'quiet':
        if (this.ports.now() >= s.until) this.startFence();
        return;
      case 'fencing':
        if (this.tick - s.sentAtTick >= RETRANSMIT_TICKS) this.sendFence(s);
        return;
      case 'catching-up':
        this.finishWhenCaughtUp(s);
        return;
      case 'done':
        return;
    }
  }

  onAck(from: NodeId, promised: Ballot, bound: Slot): void {
    const s = this.state;
    if (s.kind !== 'fencing' || !this.peers.includes(from)) return;
    const c = compareBallots(promised, s.fence);
    if (c > 0) {
      mark('rejoin fences again above a higher ballot');
      this.answered = maxBallot(this.answered, promised);
      this.startFence();
      return;
    }
    if (c < 0) return; // an answer to an earlier fence of ours
    s.acks.set(from, bound);
    if (s.acks.size < this.majority) return;
    let top = slot(0);
    for (const b of s.acks.values()) if (b > top) top = b;
    this.state = { kind: 'catching-up', fence: s.fence, bound: top };
    this.finishWhenCaughtUp(this.state);
  }

  private startFence(): void {
    const fence = ballot(maxBallot(this.ports.highestBallot(), this.answered).round + 1, this.config.self);
    const s: State = { kind: 'fencing', fence, acks: new Map(), sentAtTick: this.tick };
    this.state = s;
    this.sendFence(s);
  }

  private sendFence(s: Extract<State, { kind: 'fencing' }>): void {
    s.sentAtTick = this.tick;
    for (const p of this.peers) if (!s.acks.has(p)) this.ports.send(p, { type: 'Fence', ballot: s.fence });
  }

  private finishWhenCaughtUp(s: Extract<State, { kind: 'catching-up' }>): void {
    if (this.ports.firstUnapplied() < s.bound) return;
    mark('rebuilt acceptor votes again');
    this.state = { kind: 'done' };
    this.ports.finish(s.fence);
  }
}
