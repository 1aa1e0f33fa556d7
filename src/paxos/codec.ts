// The one mapping between Paxos domain types and the generated wire types,
// for peer messages and for durable records alike.
import { assertNever } from '../core/assert.js';
import { BOTTOM_BALLOT, type Ballot, ballot, nodeId, type Slot, slot } from '../core/ids.js';
import * as wire from '../gen/shardpax/v1/paxos.js';
import { WireError } from '../rpc/codec.js';
import type { Batch, DecidedSlot, PaxosMessage, PValue } from './messages.js';

const ballotToWire = (b: Ballot): wire.Ballot => ({ round: b.round, leader: b.leader });

function ballotFromWire(b: wire.Ballot | undefined): Ballot {
  if (b === undefined) throw new WireError('missing ballot');
  return b.round === 0 && b.leader === '' ? BOTTOM_BALLOT : ballot(b.round, nodeId(b.leader));
}

const batchToWire = (b: Batch): wire.Batch => ({ commands: [...b] });
const batchFromWire = (b: wire.Batch | undefined): Batch => b?.commands ?? [];

const pvalueToWire = (p: PValue): wire.PValue => ({
  slot: p.slot,
  ballot: ballotToWire(p.ballot),
  batch: batchToWire(p.batch),
});

function pvalueFromWire(p: wire.PValue | undefined): PValue {
  if (p === undefined) throw new WireError('missing pvalue');
  return { slot: slot(p.slot), ballot: ballotFromWire(p.ballot), batch: batchFromWire(p.batch) };
}

const decisionToWire = (d: DecidedSlot): wire.Decision => ({ slot: d.slot, batch: batchToWire(d.batch) });
const decisionFromWire = (d: wire.Decision): DecidedSlot => ({ slot: slot(d.slot), batch: batchFromWire(d.batch) });

export function paxosToWire(m: PaxosMessage): wire.PaxosMessage {
  switch (m.type) {
    case 'P1a':
      return { body: { $case: 'p1a', value: { ballot: ballotToWire(m.ballot), fromSlot: m.fromSlot } } };
    case 'P1b':
      return {
        body: {
          $case: 'p1b',
          value: {
            ballot: ballotToWire(m.ballot),
            accepted: m.accepted.map(pvalueToWire),
            compactedBelow: m.compactedBelow,
            fromSlot: m.fromSlot,
            nextSlot: m.next ?? 0,
          },
        },
      };
    case 'P2a':
      return { body: { $case: 'p2a', value: { pvalue: pvalueToWire(m.pvalue) } } };
    case 'P2b':
      return { body: { $case: 'p2b', value: { ballot: ballotToWire(m.ballot), slot: m.slot } } };
    case 'Decision':
      return { body: { $case: 'decision', value: decisionToWire(m) } };
    case 'Chosen':
      return { body: { $case: 'chosen', value: { slot: m.slot, ballot: ballotToWire(m.ballot) } } };
    case 'HeartbeatAck':
      return { body: { $case: 'heartbeatAck', value: { ballot: ballotToWire(m.ballot) } } };
    case 'Fence':
      return { body: { $case: 'fence', value: { ballot: ballotToWire(m.ballot) } } };
    case 'FenceAck':
      return { body: { $case: 'fenceAck', value: { ballot: ballotToWire(m.ballot), bound: m.bound } } };
    case 'Propose':
      return { body: { $case: 'propose', value: { commands: [...m.commands] } } };
    case 'Heartbeat':
      return { body: { $case: 'heartbeat', value: { ballot: ballotToWire(m.ballot), decidedBelow: m.decidedBelow } } };
    case 'CatchupRequest':
      return { body: { $case: 'catchupRequest', value: { fromSlot: m.fromSlot } } };
    case 'CatchupReply':
      return {
        body: { $case: 'catchupReply', value: { decisions: m.decisions.map(decisionToWire), logStart: m.logStart } },
      };
    case 'TransferRequest':
      return { body: { $case: 'transferRequest', value: { id: m.id, space: m.space, fromKey: m.fromKey } } };
    case 'TransferChunk':
      return {
        body: {
          $case: 'transferChunk',
          value: {
            id: m.id,
            slot: m.slot,
            fromKey: m.fromKey,
            space: m.chunk.space,
            entries: m.chunk.entries.map(([key, value]) => ({ key, value })),
            next: m.next,
          },
        },
      };
    case 'TransferReset':
      return { body: { $case: 'transferReset', value: { id: m.id } } };
    default:
      return assertNever(m, 'PaxosMessage');
  }
}

export function paxosFromWire(w: wire.PaxosMessage): PaxosMessage {
  const b = w.body;
  if (b === undefined) throw new WireError('PaxosMessage without a body');
  switch (b.$case) {
    case 'p1a':
      return { type: 'P1a', ballot: ballotFromWire(b.value.ballot), fromSlot: slot(b.value.fromSlot) };
    case 'p1b':
      return {
        type: 'P1b',
        ballot: ballotFromWire(b.value.ballot),
        fromSlot: slot(b.value.fromSlot),
        accepted: b.value.accepted.map(pvalueFromWire),
        next: b.value.nextSlot === 0 ? undefined : slot(b.value.nextSlot),
        compactedBelow: slot(b.value.compactedBelow),
      };
    case 'p2a':
      return { type: 'P2a', pvalue: pvalueFromWire(b.value.pvalue) };
    case 'p2b':
      return { type: 'P2b', ballot: ballotFromWire(b.value.ballot), slot: slot(b.value.slot) };
    case 'decision':
      return { type: 'Decision', ...decisionFromWire(b.value) };
    case 'chosen':
      return { type: 'Chosen', slot: slot(b.value.slot), ballot: ballotFromWire(b.value.ballot) };
    case 'heartbeatAck':
      return { type: 'HeartbeatAck', ballot: ballotFromWire(b.value.ballot) };
    case 'fence':
      return { type: 'Fence', ballot: ballotFromWire(b.value.ballot) };
    case 'fenceAck':
      return { type: 'FenceAck', ballot: ballotFromWire(b.value.ballot), bound: slot(b.value.bound) };
    case 'propose':
      return { type: 'Propose', commands: b.value.commands };
    case 'heartbeat':
      return { type: 'Heartbeat', ballot: ballotFromWire(b.value.ballot), decidedBelow: slot(b.value.decidedBelow) };
    case 'catchupRequest':
      return { type: 'CatchupRequest', fromSlot: slot(b.value.fromSlot) };
    case 'catchupReply':
      return { type: 'CatchupReply', decisions: b.value.decisions.map(decisionFromWire), logStart: slot(b.value.logStart) };
    case 'transferRequest':
      return { type: 'TransferRequest', id: b.value.id, space: b.value.space, fromKey: b.value.fromKey };
    case 'transferChunk':
      return {
        type: 'TransferChunk',
        id: b.value.id,
        slot: slot(b.value.slot),
        fromKey: b.value.fromKey,
        chunk: { space: b.value.space, entries: b.value.entries.map((e) => [e.key, e.value] as const) },
        next: b.value.next,
      };
    case 'transferReset':
      return { type: 'TransferReset', id: b.value.id };
    default:
      return assertNever(b, 'PaxosMessage wire body');
  }
}

export interface ReplicaMeta {
  readonly applied: number;
  readonly compactedBelow: number;
  /** 0: the stored state is whole. */
  readonly transferId: number;
}

/** Durable records, as LevelDB values. */
export const records = {
  encodeBallot: (b: Ballot): Uint8Array => wire.AcceptorRecord.encode({ promised: ballotToWire(b), compactedBelow: 0 }).finish(),
  decodeBallot: (bytes: Uint8Array): Ballot => ballotFromWire(wire.AcceptorRecord.decode(bytes).promised),
  encodeCompactedBelow: (s: Slot): Uint8Array => wire.AcceptorRecord.encode({ promised: undefined, compactedBelow: s }).finish(),
  decodeCompactedBelow: (bytes: Uint8Array): Slot => slot(wire.AcceptorRecord.decode(bytes).compactedBelow),
  encodePValue: (p: PValue): Uint8Array => wire.PValue.encode(pvalueToWire(p)).finish(),
  decodePValue: (bytes: Uint8Array): PValue => pvalueFromWire(wire.PValue.decode(bytes)),
  encodeDecided: (d: DecidedSlot): Uint8Array => wire.Decision.encode(decisionToWire(d)).finish(),
  decodeDecided: (bytes: Uint8Array): DecidedSlot => decisionFromWire(wire.Decision.decode(bytes)),
  encodeMeta: (m: ReplicaMeta): Uint8Array => wire.ReplicaMeta.encode(m).finish(),
  decodeMeta: (bytes: Uint8Array): ReplicaMeta => wire.ReplicaMeta.decode(bytes),
};

/** Bytes a batch of commands costs on the wire, near enough for byte bounds. */
export function batchBytes(batch: Batch): number {
  let n = 0;
  for (const c of batch) n += c.length + 4;
  return n;
}
