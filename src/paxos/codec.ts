// The one mapping between Paxos domain types and the generated wire types,
// for peer messages and for durable records alike.
import { assert, assertNever } from '../core/assert.js';
import { BOTTOM_BALLOT, type Ballot, ballot, nodeId, type Slot, slot } from '../core/ids.js';
import { StorageCorruptionError } from '../core/storage.js';
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

// Durable records, as LevelDB values. Pair assertions across the disk
// (STYLE.md): a record is checked before it is encoded, where a bad one is our
// bug (assert), and again after it is decoded, where a bad one is damaged
// storage (StorageCorruptionError, never an assert: the bytes came from disk).

const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

function isNodeId(s: string): boolean {
  try {
    nodeId(s);
    return true;
  } catch {
    return false;
  }
}

/** A ballot a leader used: never BOTTOM_BALLOT, which no acceptor persists. */
const isRealBallot = (b: Ballot): boolean => isCount(b.round) && isNodeId(b.leader);
const isBatch = (b: Batch): boolean => Array.isArray(b) && b.every((c) => c instanceof Uint8Array);

function checkPValue(p: PValue): void {
  assert(isCount(p.slot) && isRealBallot(p.ballot) && isBatch(p.batch), 'persisting an invalid pvalue');
}

function checkMeta(m: ReplicaMeta): void {
  const ok = isCount(m.applied) && isCount(m.compactedBelow) && isCount(m.transferId) && m.compactedBelow <= m.applied;
  assert(ok, `persisting invalid replica metadata ${JSON.stringify(m)}`);
}

function corrupt(kind: string, detail: string, cause?: unknown): StorageCorruptionError {
  return new StorageCorruptionError(`a stored ${kind} record ${detail}`, {}, cause === undefined ? undefined : { cause });
}

/** Decodes a record's bytes; bytes that are no such record are damaged storage. */
function decodeStored<T>(kind: string, bytes: Uint8Array, decode: (b: Uint8Array) => T): T {
  try {
    return decode(bytes);
  } catch (err) {
    throw corrupt(kind, `does not decode (${err instanceof Error ? err.message : String(err)})`, err);
  }
}

function storedCount(kind: string, field: string, n: number): number {
  if (!isCount(n)) throw corrupt(kind, `holds ${field} ${n}`);
  return n;
}

function storedBallot(kind: string, b: wire.Ballot | undefined): Ballot {
  if (b === undefined) throw corrupt(kind, 'holds no ballot');
  if (!isCount(b.round) || !isNodeId(b.leader)) throw corrupt(kind, `holds ballot ${JSON.stringify(b)}`);
  return ballot(b.round, nodeId(b.leader));
}

function storedPValue(p: wire.PValue): PValue {
  return {
    slot: slot(storedCount('pvalue', 'slot', p.slot)),
    ballot: storedBallot('pvalue', p.ballot),
    batch: batchFromWire(p.batch),
  };
}

function storedMeta(m: wire.ReplicaMeta): ReplicaMeta {
  const meta = {
    applied: storedCount('replica metadata', 'applied', m.applied),
    compactedBelow: storedCount('replica metadata', 'compactedBelow', m.compactedBelow),
    transferId: storedCount('replica metadata', 'transferId', m.transferId),
  };
  if (meta.compactedBelow > meta.applied) throw corrupt('replica metadata', `has its log start past its applied slot: ${JSON.stringify(meta)}`);
  return meta;
}

export const records = {
  encodeBallot: (b: Ballot): Uint8Array => {
    assert(isRealBallot(b), `persisting an invalid ballot ${JSON.stringify(b)}`);
    return wire.AcceptorRecord.encode({ promised: ballotToWire(b), compactedBelow: 0 }).finish();
  },
  decodeBallot: (bytes: Uint8Array): Ballot =>
    storedBallot('ballot', decodeStored('ballot', bytes, (b) => wire.AcceptorRecord.decode(b)).promised),
  encodeCompactedBelow: (s: Slot): Uint8Array => {
    assert(isCount(s), `persisting an invalid compaction bound ${s}`);
    return wire.AcceptorRecord.encode({ promised: undefined, compactedBelow: s }).finish();
  },
  decodeCompactedBelow: (bytes: Uint8Array): Slot => {
    const r = decodeStored('compaction bound', bytes, (b) => wire.AcceptorRecord.decode(b));
    return slot(storedCount('compaction bound', 'compactedBelow', r.compactedBelow));
  },
  encodePValue: (p: PValue): Uint8Array => {
    checkPValue(p);
    return wire.PValue.encode(pvalueToWire(p)).finish();
  },
  decodePValue: (bytes: Uint8Array): PValue => storedPValue(decodeStored('pvalue', bytes, (b) => wire.PValue.decode(b))),
  encodeDecided: (d: DecidedSlot): Uint8Array => {
    assert(isCount(d.slot) && isBatch(d.batch), `persisting an invalid decision for slot ${d.slot}`);
    return wire.Decision.encode(decisionToWire(d)).finish();
  },
  decodeDecided: (bytes: Uint8Array): DecidedSlot => {
    const d = decodeStored('decision', bytes, (b) => wire.Decision.decode(b));
    return { slot: slot(storedCount('decision', 'slot', d.slot)), batch: batchFromWire(d.batch) };
  },
  encodeMeta: (m: ReplicaMeta): Uint8Array => {
    checkMeta(m);
    return wire.ReplicaMeta.encode(m).finish();
  },
  decodeMeta: (bytes: Uint8Array): ReplicaMeta => storedMeta(decodeStored('replica metadata', bytes, (b) => wire.ReplicaMeta.decode(b))),
};

/** Bytes a batch of commands costs on the wire, near enough for byte bounds. */
export function batchBytes(batch: Batch): number {
  let n = 0;
  for (const c of batch) n += c.length + 4;
  return n;
}
