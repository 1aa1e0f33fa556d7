// Domain types of multi-Paxos (PMMC). A slot decides a batch of opaque
// commands (DESIGN.md 2.2: Paxos does not look inside them; the application
// hosting it does); an empty batch is a no-op. Adopted/Preempted, the paper's
// scout/commander -> leader messages, are method calls here: those roles live
// in the same server as their leader.
import type { Ballot, Slot } from '../core/ids.js';

export type Batch = readonly Uint8Array[];

export interface PValue {
  readonly slot: Slot;
  readonly ballot: Ballot;
  readonly batch: Batch;
}

export interface DecidedSlot {
  readonly slot: Slot;
  readonly batch: Batch;
}

/** Entries of one storage space, in key order, as a state transfer streams them. */
export interface TransferEntries {
  readonly space: string;
  readonly entries: ReadonlyArray<readonly [string, Uint8Array]>;
}

export type PaxosMessage =
  | { readonly type: 'P1a'; readonly ballot: Ballot; readonly fromSlot: Slot }
  /**
   * What the acceptor accepted from `fromSlot` (the P1a's, echoed) on, cut at
   * a byte bound: `next`, when set, is where the rest starts.
   */
  | {
      readonly type: 'P1b';
      readonly ballot: Ballot;
      readonly fromSlot: Slot;
      readonly accepted: readonly PValue[];
      readonly next: Slot | undefined;
      readonly compactedBelow: Slot;
    }
  | { readonly type: 'P2a'; readonly pvalue: PValue }
  | { readonly type: 'P2b'; readonly ballot: Ballot; readonly slot: Slot }
  | { readonly type: 'Decision'; readonly slot: Slot; readonly batch: Batch }
  /**
   * A decision for a replica whose acceptor accepted it: the batch stays home.
   * Any value an acceptor accepted for `slot` at `ballot` or above is the chosen one.
   */
  | { readonly type: 'Chosen'; readonly slot: Slot; readonly ballot: Ballot }
  /** Before running, would the peer promise `ballot`? (pre-vote: a node back from a restart does not depose a live leader) */
  | { readonly type: 'PreVote'; readonly ballot: Ballot; readonly appliedBelow: Slot }
  | { readonly type: 'PreVoteAck'; readonly ballot: Ballot; readonly granted: boolean }
  /** A rebuilt acceptor fences off every ballot it may have promised before it lost its disk (rejoin.ts). */
  | { readonly type: 'Fence'; readonly ballot: Ballot }
  /** The peer's promise after a Fence, and a slot above every one it holds a value for or compacted. */
  | { readonly type: 'FenceAck'; readonly ballot: Ballot; readonly bound: Slot }
  | { readonly type: 'Propose'; readonly commands: Batch }
  | { readonly type: 'Heartbeat'; readonly ballot: Ballot; readonly decidedBelow: Slot }
  /** Follower -> leader: the ballot its acceptor promised (a leader knows it leads while a majority answers). */
  | { readonly type: 'HeartbeatAck'; readonly ballot: Ballot }
  | { readonly type: 'CatchupRequest'; readonly fromSlot: Slot }
  /** Consecutive decisions from the asked slot; `logStart` above it: the asker must transfer the state. */
  | { readonly type: 'CatchupReply'; readonly decisions: readonly DecidedSlot[]; readonly logStart: Slot }
  /** Receiver -> sender: the next chunk of transfer `id`, from `space`/`fromKey` on (a new transfer: empty space). */
  | { readonly type: 'TransferRequest'; readonly id: number; readonly space: string; readonly fromKey: string }
  /**
   * Sender -> receiver: entries of the state as of `slot` (every slot below
   * it applied); `next` is where the space goes on, absent when it is done
   * (the receiver then asks for the next space, or finishes after the last).
   */
  | {
      readonly type: 'TransferChunk';
      readonly id: number;
      readonly slot: Slot;
      /** The request's `fromKey`, echoed: tells a chunk from a late duplicate of an earlier one. */
      readonly fromKey: string;
      readonly chunk: TransferEntries;
      readonly next: string | undefined;
    }
  /** Sender -> receiver: transfer `id` is unknown here (the sender restarted or dropped it): start over. */
  | { readonly type: 'TransferReset'; readonly id: number };

/**
 * One periodic tick drives heartbeats, retransmission, elections, catch-up
 * and transfer timeouts; ToSelf delivers what a server sent itself, in a
 * later step; Apply goes on applying held decisions that one step left.
 */
export type PaxosTimer = { readonly type: 'Tick' } | { readonly type: 'ToSelf' } | { readonly type: 'Apply' };
