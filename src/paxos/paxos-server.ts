// One server of a replica group: a PMMC acceptor, leader and replica
// co-located (DESIGN.md 2.2), plus the two ends of state transfer. Generic
// over its application: it replicates opaque commands and hands each decided
// slot, in order, to the host that embeds it (dslabs' Paxos-as-a-sub-node).
// Client admission and deduplication belong to that host (src/kv).
//
// A phase 1 or 2 request a leader sends its own acceptor is handled in a
// later step (a zero-delay timer), so the requests to the other acceptors
// leave without waiting for the local promise to be synced; everything else a
// server sends itself is handled at once.
//
// Messages from the network enter through onMessage, the door: each is
// validated (validate.ts) before any role sees it; an invalid one is counted
// in `invalid` and dropped. What this server sends itself skips the door.
import { assert, assertNever } from '../core/assert.js';
import { DropCounter } from '../core/drop-counter.js';
import type { Env } from '../core/env.js';
import { BOTTOM_BALLOT, type Ballot, compareBallots, maxBallot, type Millis, millis, type NodeId, type Slot } from '../core/ids.js';
import { mark } from '../core/marks.js';
import type { ScanRequest, ScanResult, StoredState } from '../core/storage.js';
import { ACCEPTED_SPACE, ACCEPTOR_SPACE, Acceptor } from './acceptor.js';
import { Leader } from './leader.js';
import type { Batch, PaxosMessage, PaxosTimer } from './messages.js';
import { MAX_BATCH_COMMANDS } from './limits.js';
import { Rejoin } from './rejoin.js';
import { LOG_SPACE, META_SPACE, Replica } from './replica.js';
import { StateReceiver, type TransferSpace } from './state-receiver.js';
import { StateSender } from './state-sender.js';
import { type GroupView, validatePeerMessage } from './validate.js';

export interface PaxosServerConfig {
  readonly self: NodeId;
  readonly members: readonly NodeId[];
  readonly tickMs: Millis;
  readonly electionTicks: number;
  /** See leader.ts; a rebuilt acceptor waits twice this before it fences (rejoin.ts). */
  readonly maxScoutAgeMs: number;
  /** This node lost its disk: its acceptor rebuilds (honoured on an empty store only). */
  readonly rebuild?: boolean;
  readonly window: number;
  readonly maxBatch: number;
  readonly maxBatchBytes: number;
  readonly maxPendingBytes: number;
  readonly logRetainSlots: number;
  readonly maxPendingSlots: number;
  readonly maxPendingDecisionBytes: number;
  readonly maxApplyBytesPerStep: number;
  readonly maxCatchup: number;
  readonly maxCatchupBytes: number;
  /** Bytes of accepted values in one P1b at most (one larger value goes alone). */
  readonly maxP1bBytes: number;
  readonly maxChunkBytes: number;
  readonly maxTransfers: number;
  readonly transferIdleTicks: number;
  readonly transferRetryTicks: number;
  readonly transferMaxRetries: number;
}

export const DEFAULT_PAXOS_TUNING = {
  tickMs: 20 as Millis,
  electionTicks: 10,
  maxScoutAgeMs: 5_000,
  window: 8,
  maxBatch: 256,
  maxBatchBytes: 512 * 1024,
  maxPendingBytes: 32 * 1024 * 1024,
  logRetainSlots: 5000,
  maxPendingSlots: 2_000,
  maxPendingDecisionBytes: 8 * 1024 * 1024,
  maxApplyBytesPerStep: 4 * 1024 * 1024,
  maxCatchup: 512,
  maxCatchupBytes: 1024 * 1024,
  maxP1bBytes: 1024 * 1024,
  maxChunkBytes: 256 * 1024,
  maxTransfers: 2,
  transferIdleTicks: 1500,
  transferRetryTicks: 50,
  transferMaxRetries: 5,
} as const;

/** The application Paxos replicates for. */
export interface PaxosHost {
  /** Applies the commands one slot decided, in order. Its writes go to the step's ready batch. */
  apply(s: Slot, batch: Batch): void;
  /** The storage spaces holding the application's state: what a state transfer streams. */
  readonly stateSpaces: readonly TransferSpace[];
  /** A transfer replaced the stored state; `small` holds the small spaces whole. */
  restored(small: ReadonlyMap<string, ReadonlyArray<readonly [string, Uint8Array]>>): void;
}

export interface PaxosObserver {
  /** Every decision a replica learns, the first time it learns it. */
  learned?(server: NodeId, s: Slot, batch: Batch): void;
}

/** Spaces Paxos keeps; ACCEPTOR_SPACE is read whole at start (it is small). */
export const PAXOS_SPACES = [ACCEPTOR_SPACE, ACCEPTED_SPACE, LOG_SPACE, META_SPACE] as const;
/**
 * Messages that vouch for nothing this node has yet to write, so they leave
 * without waiting for its disk (Env.sendNow). Not here: P1b, P2b and FenceAck,
 * whose promise or accept must be on disk first.
 */
const UNBACKED: ReadonlySet<PaxosMessage['type']> = new Set<PaxosMessage['type']>([
  'P1a', // asks; promises nothing
  'P2a', // a proposal: the leader's own accept goes through its acceptor like any other
  'Chosen', // decided: a quorum of acceptors holds it on disk
  'Decision',
  'Heartbeat',
  'HeartbeatAck', // a promise reported for information, not a vote
  'PreVote', // changes nothing anywhere
  'PreVoteAck',
  'Propose',
  'CatchupRequest',
  'CatchupReply', // decided slots
  'TransferRequest',
  'TransferChunk', // state of decided slots
  'TransferReset',
  'Fence', // asks, like a P1a
]);

export const PAXOS_PRELOAD = [ACCEPTOR_SPACE] as const;

export class PaxosServer {
  readonly acceptor: Acceptor;
  readonly leader: Leader;
  readonly replica: Replica;
  readonly sender: StateSender;
  readonly receiver: StateReceiver;
  readonly rejoin: Rejoin;
  /** Messages from the network dropped at the door (and by the host's own door), by reason. */
  readonly invalid = new DropCounter();
  /** The highest ballot heard in a heartbeat, or in a P1a/P2a/Fence it did not answer while rebuilding. */
  private heard: Ballot = BOTTOM_BALLOT;
  private toSelf: PaxosMessage[] = [];
  /** An Apply timer is armed: held decisions wait for their next step. */
  private applyQueued = false;
  private readonly peers: readonly NodeId[];
  private readonly group: GroupView;

  constructor(
    private readonly env: Env<PaxosMessage, PaxosTimer>,
    private readonly config: PaxosServerConfig,
    private readonly host: PaxosHost,
    stored: StoredState,
    observer: PaxosObserver = {},
  ) {
    assert(config.members.includes(config.self), `${config.self} is not a member of its group`);
    assert(config.maxBatch <= MAX_BATCH_COMMANDS, `maxBatch ${config.maxBatch} is above what peers accept (${MAX_BATCH_COMMANDS})`);
    this.peers = config.members.filter((m) => m !== config.self);
    this.group = { self: config.self, members: new Set(config.members) };
    const persist = env.persist.bind(env);
    const read = env.read.bind(env);
    this.acceptor = new Acceptor({ persist, persistUnsynced: env.persistUnsynced.bind(env), read }, stored, config.rebuild);
    this.rejoin = new Rejoin(
      { self: config.self, members: config.members, quietMs: 2 * config.maxScoutAgeMs },
      {
        send: (to, m) => this.send(to, m),
        now: () => env.now(),
        highestBallot: () => maxBallot(maxBallot(this.heard, this.leader.highestBallot()), this.acceptor.ballot),
        firstUnapplied: () => this.replica.firstUnapplied(),
        finish: (fence) => this.acceptor.finishRebuild(fence),
      },
      this.acceptor.rebuilding,
    );
    this.replica = new Replica(config, {
      persist,
      persistUnsynced: env.persistUnsynced.bind(env),
      read,
      apply: (s, batch) => host.apply(s, batch),
      keepLogFrom: () => this.sender.lowestServedSlot(),
      moreToApply: () => {
        if (this.applyQueued) return;
        this.applyQueued = true;
        env.setTimer({ type: 'Apply' }, millis(0));
      },
      learned: (s, batch) => {
        observer.learned?.(config.self, s, batch);
        this.leader.onLearned(s);
      },
    });
    this.leader = new Leader(config, {
      send: (to, m) => this.send(to, m),
      random: () => env.random(),
      firstUnapplied: () => this.replica.firstUnapplied(),
      promised: () => this.acceptor.ballot,
      // A replica far behind would slow the election and drag a huge phase 1: it lets others lead.
      mayRun: () => !this.acceptor.rebuilding && !this.receiver.active() && this.replica.lag() < config.window * 4,
      now: () => env.now(),
    });
    this.sender = new StateSender(
      host.stateSpaces.map((s) => s.name),
      { maxChunkBytes: config.maxChunkBytes, maxTransfers: config.maxTransfers, idleTicks: config.transferIdleTicks },
      {
        send: (to, m) => this.send(to, m),
        openSnapshot: () => env.openSnapshot(),
        releaseSnapshot: (id) => env.releaseSnapshot(id),
        scan: (r) => env.scan(r),
        wholeStateAt: () => (this.replica.transferInProgress() === 0 ? this.replica.firstUnapplied() : undefined),
      },
    );
    this.receiver = new StateReceiver(
      host.stateSpaces,
      { retryTicks: config.transferRetryTicks, maxRetries: config.transferMaxRetries },
      {
        send: (to, m) => this.send(to, m),
        persistUnsynced: env.persistUnsynced.bind(env),
        random: () => env.random(),
        begin: (id) => this.replica.beginTransfer(id),
        covers: (at) => this.replica.transferCovers(at),
        appliedBefore: () => this.replica.firstUnapplied(),
        finish: (at, small) => {
          // The host reloads what it keeps in memory first: finishing applies the slots held past `at`.
          host.restored(small);
          this.replica.finishTransfer(at);
          this.compactAcceptor();
          this.leader.onCaughtUp();
        },
      },
    );
    if (this.replica.transferInProgress() !== 0 && this.peers.length > 0) {
      mark('replica restarts an interrupted transfer');
      this.receiver.start(this.randomPeer());
    }
    // Decisions it had logged beyond its stored state apply now, not when the next one arrives.
    this.replica.applyReady();
    env.setTimer({ type: 'Tick' }, config.tickMs);
  }

  /** Commands from the local host: proposed, or passed to the leader. */
  propose(commands: Batch): void {
    this.leader.propose(commands, this.config.self);
  }

  /** A message from the network: handled if it passes the door, else counted and dropped. */
  onMessage(from: NodeId, m: PaxosMessage): void {
    const bad = validatePeerMessage(from, m, this.group);
    if (bad !== undefined) {
      this.invalid.count(bad.reason, bad.detail);
      return;
    }
    this.dispatch(from, m);
  }

  private dispatch(from: NodeId, m: PaxosMessage): void {
    if (this.acceptor.rebuilding && (m.type === 'P1a' || m.type === 'P2a' || m.type === 'Fence')) {
      // It may have promised or accepted anything before its disk was lost: it does not vote (rejoin.ts).
      const b = m.type === 'P2a' ? m.pvalue.ballot : m.ballot;
      this.heard = maxBallot(this.heard, b);
      return;
    }
    switch (m.type) {
      case 'P1a': {
        const r = this.acceptor.onP1a(m.ballot, m.fromSlot, this.config.maxP1bBytes);
        this.send(from, { type: 'P1b', ...r });
        return;
      }
      case 'P1b':
        this.leader.onP1b(from, m);
        return;
      case 'P2a': {
        const b = this.acceptor.onP2a(m.pvalue);
        if (b !== undefined) this.send(from, { type: 'P2b', ballot: b, slot: m.pvalue.slot });
        return;
      }
      case 'P2b': {
        const decided = this.leader.onP2b(from, m.ballot, m.slot);
        if (decided === undefined) return;
        const { slot: s, ballot: b, batch } = decided.pvalue;
        for (const member of this.config.members) {
          // A peer that accepted the value holds it: sending it again would double the leader's traffic.
          const holds = member !== this.config.self && decided.acceptedBy.includes(member);
          this.send(member, holds ? { type: 'Chosen', slot: s, ballot: b } : { type: 'Decision', slot: s, batch });
        }
        return;
      }
      case 'Decision':
        this.replica.onDecision(m.slot, m.batch);
        this.compactAcceptor();
        return;
      case 'Chosen': {
        // Not held (compacted once applied, or lost to a crash before it synced: then it never voted):
        // the replica learns the slot by catch-up, as it would a lost Decision.
        const batch = this.acceptor.chosenValue(m.slot, m.ballot);
        if (batch === undefined) {
          mark('replica cannot resolve a Chosen from its acceptor');
          return;
        }
        this.replica.onDecision(m.slot, batch);
        this.compactAcceptor();
        return;
      }
      case 'Fence':
        this.send(from, { type: 'FenceAck', ...this.acceptor.onFence(m.ballot) });
        return;
      case 'FenceAck':
        this.rejoin.onAck(from, m.ballot, m.bound);
        return;
      case 'Propose':
        this.leader.propose(m.commands, from);
        return;
      case 'Heartbeat':
        this.heard = maxBallot(this.heard, m.ballot);
        this.leader.onHeartbeat(m.ballot);
        this.replica.noteDecidedBelow(m.decidedBelow);
        // A rebuilding acceptor's promise means nothing yet: it does not count towards a leader's majority.
        if (!this.acceptor.rebuilding) this.send(from, { type: 'HeartbeatAck', ballot: this.acceptor.ballot });
        return;
      case 'HeartbeatAck':
        this.leader.onHeartbeatAck(from, m.ballot);
        return;
      case 'PreVote': {
        // Not to a node behind this one: elected, it would first have to catch up (the failover benchmark's lagging node).
        const granted =
          !this.acceptor.rebuilding &&
          compareBallots(m.ballot, this.acceptor.ballot) > 0 &&
          m.appliedBelow >= this.replica.firstUnapplied() &&
          this.leader.grantsPreVote();
        if (!granted) mark('pre-vote refused');
        this.send(from, { type: 'PreVoteAck', ballot: m.ballot, granted });
        return;
      }
      case 'PreVoteAck':
        this.leader.onPreVoteAck(from, m.ballot, m.granted);
        return;
      case 'CatchupRequest':
        this.sender.touch(from);
        this.send(from, { type: 'CatchupReply', ...this.replica.catchupFor(m.fromSlot) });
        return;
      case 'CatchupReply':
        this.onCatchupReply(from, m);
        return;
      case 'TransferRequest':
        this.sender.onRequest(from, m);
        return;
      case 'TransferChunk':
        this.receiver.onChunk(from, m, this.peers);
        return;
      case 'TransferReset':
        this.receiver.onReset(from, m, this.peers);
        return;
      default:
        assertNever(m, 'PaxosMessage');
    }
  }

  onTimer(timer: PaxosTimer): void {
    switch (timer.type) {
      case 'Tick':
        this.leader.onTick();
        this.rejoin.onTick();
        this.sender.onTick();
        this.receiver.onTick(this.peers);
        if (this.replica.lagging() && !this.receiver.active()) this.askForCatchup();
        this.env.setTimer({ type: 'Tick' }, this.config.tickMs);
        return;
      case 'Apply':
        this.applyQueued = false;
        this.replica.applyReady();
        this.compactAcceptor();
        return;
      case 'ToSelf': {
        const messages = this.toSelf;
        this.toSelf = [];
        for (const m of messages) this.dispatch(this.config.self, m);
        return;
      }
      default:
        assertNever(timer, 'PaxosTimer');
    }
  }

  onScanned(request: ScanRequest, result: ScanResult | undefined): void {
    this.sender.onScanned(request, result);
  }

  checkInvariants(): void {
    this.acceptor.checkInvariants();
    this.leader.checkInvariants();
    this.replica.checkInvariants();
    this.sender.checkInvariants();
    assert(this.acceptor.compacted <= this.replica.firstUnapplied(), 'acceptor compacted past the applied state');
  }

  private onCatchupReply(from: NodeId, m: Extract<PaxosMessage, { type: 'CatchupReply' }>): void {
    if (this.receiver.active()) return;
    const first = m.decisions[0];
    if (first === undefined && m.logStart > this.replica.firstUnapplied()) {
      const source = this.receiver.catchupSource(this.config.transferIdleTicks);
      // Right after a transfer, only its sender is sure to have the log that follows it.
      if (source !== undefined && source !== from) return;
      this.receiver.start(from);
      return;
    }
    if (first === undefined && this.receiver.catchupSource(this.config.transferIdleTicks) === from) {
      mark('replica stops catching up from a transfer sender with nothing more');
      this.receiver.forgetCatchupSource();
    }
    for (const d of m.decisions) this.replica.onDecision(d.slot, d.batch);
    this.compactAcceptor();
    this.leader.onCaughtUp();
  }

  private send(to: NodeId, message: PaxosMessage): void {
    if (to !== this.config.self) {
      if (UNBACKED.has(message.type)) this.env.sendNow(to, message);
      else this.env.send(to, message);
    } else if (message.type === 'P1a' || message.type === 'P2a') {
      if (this.toSelf.length === 0) this.env.setTimer({ type: 'ToSelf' }, millis(0));
      this.toSelf.push(message);
    } else {
      this.dispatch(this.config.self, message);
    }
  }

  /** Every slot the replica applied is decided: the acceptor forgets it, so a P1b carries only what is not applied here. */
  private compactAcceptor(): void {
    if (this.replica.transferInProgress() !== 0) return;
    this.acceptor.compact(this.replica.firstUnapplied());
  }

  /** Asks the peer that just sent us a state, else the leader (else a random peer), for what we are missing. */
  private askForCatchup(): void {
    const leader = this.leader.knownLeader();
    const target =
      this.receiver.catchupSource(this.config.transferIdleTicks) ??
      (leader !== undefined && leader !== this.config.self ? leader : this.randomPeer());
    this.send(target, { type: 'CatchupRequest', fromSlot: this.replica.firstUnapplied() });
  }

  private randomPeer(): NodeId {
    const p = this.peers[Math.floor(this.env.random() * this.peers.length)];
    return p ?? this.config.self;
  }
}
