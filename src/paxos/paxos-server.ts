// One server of a replica group: a PMMC acceptor, leader and replica
// co-located (DESIGN.md 2.2), driven as one protocol node. A phase 1 or 2
// request a leader sends its own acceptor is handled in a later step (a
// zero-delay timer), so the requests to the other acceptors leave without
// waiting for the local promise to be synced; everything else a server sends
// itself is handled at once.
import { assert, assertNever } from '../core/assert.js';
import type { Application } from '../core/application.js';
import type { Env, ProtocolNode } from '../core/env.js';
import { type Millis, millis, type NodeId, type Slot } from '../core/ids.js';
import type { StoredState } from '../core/storage.js';
import { AmoApplication, type AmoOptions, DEFAULT_AMO_OPTIONS } from '../rpc/amo-application.js';
import { ACCEPTED_SPACE, ACCEPTOR_SPACE, Acceptor } from './acceptor.js';
import { Leader } from './leader.js';
import type { Batch, PaxosMessage, ServerMessage, ServerTimer } from './messages.js';
import { LOG_SPACE, Replica, SNAPSHOT_SPACE } from './replica.js';

export interface PaxosServerConfig {
  readonly self: NodeId;
  readonly members: readonly NodeId[];
  readonly tickMs: Millis;
  readonly electionTicks: number;
  readonly window: number;
  readonly maxBatch: number;
  readonly snapshotEvery: number;
  readonly maxCatchup: number;
  readonly maxWaiting: number;
  readonly amo: AmoOptions;
}

export const DEFAULT_PAXOS_TUNING = {
  tickMs: 20 as Millis,
  electionTicks: 10,
  window: 8,
  maxBatch: 256,
  snapshotEvery: 1000,
  maxCatchup: 512,
  maxWaiting: 100_000,
  amo: DEFAULT_AMO_OPTIONS,
} as const;

/** The storage spaces a Paxos server keeps. */
export const PAXOS_SPACES: readonly string[] = [ACCEPTOR_SPACE, ACCEPTED_SPACE, LOG_SPACE, SNAPSHOT_SPACE];

export interface PaxosObserver {
  learned?(server: NodeId, s: Slot, batch: Batch): void;
}

export class PaxosServer implements ProtocolNode<ServerMessage, ServerTimer> {
  readonly acceptor: Acceptor;
  readonly leader: Leader;
  readonly replica: Replica;
  private toSelf: ServerMessage[] = [];

  constructor(
    private readonly env: Env<ServerMessage, ServerTimer>,
    private readonly config: PaxosServerConfig,
    app: Application<Uint8Array, Uint8Array>,
    stored: StoredState,
    observer: PaxosObserver = {},
  ) {
    assert(config.members.includes(config.self), `${config.self} is not a member of its group`);
    const persist = env.persist.bind(env);
    this.acceptor = new Acceptor(persist, stored);
    this.replica = new Replica(
      new AmoApplication(app, config.amo),
      config,
      {
        persist,
        persistUnsynced: env.persistUnsynced.bind(env),
        reply: (to, result) => this.send(to, { type: 'ClientResult', result }),
        learned: (s, batch) => {
          observer.learned?.(config.self, s, batch);
          this.leader.onLearned(s);
        },
      },
      stored,
    );
    this.compactAcceptor();
    this.leader = new Leader(config, {
      send: (to, m) => this.send(to, m),
      random: () => env.random(),
      firstUnapplied: () => this.replica.firstUnapplied(),
      promised: () => this.acceptor.ballot,
    });
    env.setTimer({ type: 'Tick' }, config.tickMs);
  }

  onMessage(from: NodeId, message: ServerMessage): void {
    this.handle(from, message);
  }

  onTimer(timer: ServerTimer): void {
    switch (timer.type) {
      case 'Tick':
        this.leader.onTick();
        if (this.replica.lagging()) this.askForCatchup();
        this.env.setTimer({ type: 'Tick' }, this.config.tickMs);
        return;
      case 'ToSelf': {
        const messages = this.toSelf;
        this.toSelf = [];
        for (const m of messages) this.handle(this.config.self, m);
        return;
      }
      case 'SessionRetry':
        return; // servers hold no client sessions
      default:
        assertNever(timer, 'ServerTimer');
    }
  }

  checkInvariants(): void {
    this.acceptor.checkInvariants();
    this.leader.checkInvariants();
    this.replica.checkInvariants();
  }

  private send(to: NodeId, message: ServerMessage): void {
    if (to !== this.config.self) {
      this.env.send(to, message);
    } else if (message.type === 'P1a' || message.type === 'P2a') {
      if (this.toSelf.length === 0) this.env.setTimer({ type: 'ToSelf' }, millis(0));
      this.toSelf.push(message);
    } else {
      this.handle(this.config.self, message);
    }
  }

  private handle(from: NodeId, m: ServerMessage): void {
    switch (m.type) {
      case 'ClientCommand':
        if (this.replica.admit(from, m.command)) this.leader.propose([m.command], this.config.self);
        return;
      case 'ClientResult':
        return; // servers are not clients
      default:
        this.handlePaxos(from, m);
    }
  }

  private handlePaxos(from: NodeId, m: PaxosMessage): void {
    switch (m.type) {
      case 'P1a': {
        const r = this.acceptor.onP1a(m.ballot, m.fromSlot);
        this.send(from, { type: 'P1b', ...r });
        return;
      }
      case 'P1b':
        this.leader.onP1b(from, m.ballot, m.accepted, m.compactedBelow);
        return;
      case 'P2a': {
        const b = this.acceptor.onP2a(m.pvalue);
        if (b !== undefined) this.send(from, { type: 'P2b', ballot: b, slot: m.pvalue.slot });
        return;
      }
      case 'P2b': {
        const decided = this.leader.onP2b(from, m.ballot, m.slot);
        if (decided === undefined) return;
        for (const member of this.config.members) {
          this.send(member, { type: 'Decision', slot: decided.slot, batch: decided.batch });
        }
        return;
      }
      case 'Decision':
        this.replica.onDecision(m.slot, m.batch);
        this.compactAcceptor();
        return;
      case 'Propose':
        this.leader.propose(m.commands, from);
        return;
      case 'Heartbeat':
        this.leader.onHeartbeat(m.ballot);
        this.replica.noteDecidedBelow(m.decidedBelow);
        return;
      case 'CatchupRequest':
        this.send(from, { type: 'CatchupReply', ...this.replica.catchupFor(m.fromSlot) });
        return;
      case 'CatchupReply':
        this.replica.onCatchup(m.decisions, m.snapshot);
        this.compactAcceptor();
        this.leader.onCaughtUp();
        return;
      default:
        assertNever(m, 'PaxosMessage');
    }
  }

  /** The replica's snapshot covers every slot below its bound: the acceptor may forget them. */
  private compactAcceptor(): void {
    this.acceptor.compact(this.replica.compactedBelow());
  }

  /** Asks the leader (or, with none known, a random peer) for what we are missing. */
  private askForCatchup(): void {
    const peers = this.config.members.filter((m) => m !== this.config.self);
    const leader = this.leader.knownLeader();
    const target =
      leader !== undefined && leader !== this.config.self ? leader : peers[Math.floor(this.env.random() * peers.length)];
    if (target !== undefined) this.send(target, { type: 'CatchupRequest', fromSlot: this.replica.firstUnapplied() });
  }
}
