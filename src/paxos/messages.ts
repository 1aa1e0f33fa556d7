// Domain types of multi-Paxos (PMMC). A slot decides a batch of client
// commands; an empty batch is a no-op. Adopted/Preempted, the paper's
// scout/commander -> leader messages, are method calls here: those roles live
// in the same server as their leader.
import type { Ballot, Slot } from '../core/ids.js';
import type { AmoCommand, RpcMessage, RpcTimer } from '../rpc/messages.js';

export type Batch = readonly AmoCommand[];

export interface PValue {
  readonly slot: Slot;
  readonly ballot: Ballot;
  readonly batch: Batch;
}

export interface DecidedSlot {
  readonly slot: Slot;
  readonly batch: Batch;
}

/** The application state after applying every slot below `slot`. */
export interface ReplicaSnapshot {
  readonly slot: Slot;
  readonly state: Uint8Array;
}

export type PaxosMessage =
  | { readonly type: 'P1a'; readonly ballot: Ballot; readonly fromSlot: Slot }
  | { readonly type: 'P1b'; readonly ballot: Ballot; readonly accepted: readonly PValue[]; readonly compactedBelow: Slot }
  | { readonly type: 'P2a'; readonly pvalue: PValue }
  | { readonly type: 'P2b'; readonly ballot: Ballot; readonly slot: Slot }
  | { readonly type: 'Decision'; readonly slot: Slot; readonly batch: Batch }
  | { readonly type: 'Propose'; readonly commands: Batch }
  | { readonly type: 'Heartbeat'; readonly ballot: Ballot; readonly decidedBelow: Slot }
  | { readonly type: 'CatchupRequest'; readonly fromSlot: Slot }
  | {
      readonly type: 'CatchupReply';
      readonly decisions: readonly DecidedSlot[];
      readonly snapshot: ReplicaSnapshot | undefined;
    };

/** Everything a group server sends or receives. */
export type ServerMessage = PaxosMessage | RpcMessage;

/**
 * One periodic tick drives heartbeats, retransmission, elections and
 * catch-up; ToSelf delivers what a server sent itself, in a later step.
 */
export type ServerTimer = { readonly type: 'Tick' } | { readonly type: 'ToSelf' } | RpcTimer;
