// The one mapping between Paxos domain types and the generated wire types,
// for peer messages and for durable records alike.
//
// Messages come from the network, so their decoding checks every field on its
// own (limits.ts): a number out of range, a malformed id or name, an empty or
// oversized batch is a WireError, and the message is dropped before any role
// sees it. Who may send what is checked on arrival (validate.ts).
import { assert, assertNever } from '../core/assert.js';
import { BOTTOM_BALLOT, type Ballot, ballot, nodeId, type NodeId, parseNodeId, type Slot, slot } from '../core/ids.js';
import { isSpaceName, StorageCorruptionError } from '../core/storage.js';
import * as wire from '../gen/shardpax/v1/paxos.js';
import { WireError, wireNat } from '../rpc/codec.js';
import { MAX_BATCH_COMMANDS, MAX_ROUND, MAX_SLOT, MAX_TRANSFER_KEY_CHARS } from './limits.js';
import type { Batch, DecidedSlot, PaxosMessage, PValue } from './messages.js';

const ballotToWire = (b: Ballot): wire.Ballot => ({ round: b.round, leader: b.leader });

const batchToWire = (b: Batch): wire.Batch => ({ commands: [...b] });
const batchFromWire = (b: wire.Batch | undefined): Batch => b?.commands ?? [];

const pvalueToWire = (p: PValue): wire.PValue => ({
  slot: p.slot,
  ballot: ballotToWire(p.ballot),
  batch: batchToWire(p.batch),
});

const decisionToWire = (d: DecidedSlot): wire.Decision => ({ slot: d.slot, batch: batchToWire(d.batch) });

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
    case 'PreVote':
      return { body: { $case: 'preVote', value: { ballot: ballotToWire(m.ballot), appliedBelow: m.appliedBelow } } };
    case 'PreVoteAck':
      return { body: { $case: 'preVoteAck', value: { ballot: ballotToWire(m.ballot), granted: m.granted } } };
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

/** Decodes a message from the network; a WireError if any field is out of range. */
export function paxosFromWire(w: wire.PaxosMessage): PaxosMessage {
  const b = w.body;
  if (b === undefined) throw new WireError('PaxosMessage without a body');
  switch (b.$case) {
    case 'p1a':
      return { type: 'P1a', ballot: sentBallot(b.value.ballot, 'P1a'), fromSlot: sentSlot(b.value.fromSlot, 'P1a from_slot') };
    case 'p1b':
      return {
        type: 'P1b',
        ballot: sentBallot(b.value.ballot, 'P1b'),
        fromSlot: sentSlot(b.value.fromSlot, 'P1b from_slot'),
        accepted: b.value.accepted.map((p) => sentPValue(p, 'P1b accepted value')),
        next: b.value.nextSlot === 0 ? undefined : sentSlot(b.value.nextSlot, 'P1b next_slot'),
        compactedBelow: sentSlot(b.value.compactedBelow, 'P1b compacted_below'),
      };
    case 'p2a':
      return { type: 'P2a', pvalue: sentPValue(b.value.pvalue, 'P2a') };
    case 'p2b':
      return { type: 'P2b', ballot: sentBallot(b.value.ballot, 'P2b'), slot: sentSlot(b.value.slot, 'P2b slot') };
    case 'decision':
      return { type: 'Decision', ...sentDecision(b.value, 'Decision') };
    case 'chosen':
      return { type: 'Chosen', slot: sentSlot(b.value.slot, 'Chosen slot'), ballot: sentBallot(b.value.ballot, 'Chosen') };
    case 'preVote':
      return {
        type: 'PreVote',
        ballot: sentBallot(b.value.ballot, 'PreVote'),
        appliedBelow: sentSlot(b.value.appliedBelow, 'PreVote applied_below'),
      };
    case 'preVoteAck':
      return { type: 'PreVoteAck', ballot: sentBallot(b.value.ballot, 'PreVoteAck'), granted: b.value.granted };
    case 'heartbeatAck':
      return { type: 'HeartbeatAck', ballot: sentPromise(b.value.ballot, 'HeartbeatAck') };
    case 'fence':
      return { type: 'Fence', ballot: sentBallot(b.value.ballot, 'Fence') };
    case 'fenceAck':
      return { type: 'FenceAck', ballot: sentBallot(b.value.ballot, 'FenceAck'), bound: sentSlot(b.value.bound, 'FenceAck bound') };
    case 'propose':
      if (b.value.commands.length === 0) throw new WireError('Propose with no commands');
      return { type: 'Propose', commands: sentBatch(b.value, 'Propose') };
    case 'heartbeat':
      return {
        type: 'Heartbeat',
        ballot: sentBallot(b.value.ballot, 'Heartbeat'),
        decidedBelow: sentSlot(b.value.decidedBelow, 'Heartbeat decided_below'),
      };
    case 'catchupRequest':
      return { type: 'CatchupRequest', fromSlot: sentSlot(b.value.fromSlot, 'CatchupRequest from_slot') };
    case 'catchupReply':
      return {
        type: 'CatchupReply',
        decisions: b.value.decisions.map((d) => sentDecision(d, 'CatchupReply decision')),
        logStart: sentSlot(b.value.logStart, 'CatchupReply log_start'),
      };
    case 'transferRequest':
      return {
        type: 'TransferRequest',
        id: transferId(b.value.id, 'TransferRequest'),
        space: spaceName(b.value.space, 'TransferRequest'),
        fromKey: transferKey(b.value.fromKey, 'TransferRequest from_key'),
      };
    case 'transferChunk':
      return {
        type: 'TransferChunk',
        id: transferId(b.value.id, 'TransferChunk'),
        slot: sentSlot(b.value.slot, 'TransferChunk slot'),
        fromKey: transferKey(b.value.fromKey, 'TransferChunk from_key'),
        chunk: {
          space: spaceName(b.value.space, 'TransferChunk'),
          entries: b.value.entries.map((e) => [transferKey(e.key, 'TransferChunk entry key'), e.value] as const),
        },
        next: b.value.next === undefined ? undefined : transferKey(b.value.next, 'TransferChunk next'),
      };
    case 'transferReset':
      return { type: 'TransferReset', id: transferId(b.value.id, 'TransferReset') };
    default:
      return assertNever(b, 'PaxosMessage wire body');
  }
}

// Checked decoding of message fields. Each checks before it calls an id's
// constructor, so the constructor's assertion cannot fire on input.

/** A ballot a node sent: never the bottom ballot (no node sends it), round within MAX_ROUND. */
function sentBallot(b: wire.Ballot | undefined, what: string): Ballot {
  if (b === undefined) throw new WireError(`${what} without a ballot`);
  const round = wireNat(b.round, MAX_ROUND, `${what} ballot round`);
  if (round === 0) throw new WireError(`${what} ballot round 0: only the bottom ballot has it, and it is never sent`);
  return ballot(round, sentNodeId(b.leader, `${what} ballot leader`));
}

/** An acceptor's promise: the bottom ballot while it has promised nothing, else as sentBallot. */
function sentPromise(b: wire.Ballot | undefined, what: string): Ballot {
  return b !== undefined && b.round === 0 && b.leader === '' ? BOTTOM_BALLOT : sentBallot(b, what);
}

function sentNodeId(s: string, what: string): NodeId {
  const id = parseNodeId(s);
  if (id === undefined) throw new WireError(`${what} ${JSON.stringify(s.slice(0, 80))} is not a node id`);
  return id;
}

const sentSlot = (n: number, what: string): Slot => slot(wireNat(n, MAX_SLOT, what));

/** Up to MAX_BATCH_COMMANDS commands; an absent batch is the empty one (a no-op slot). */
function sentBatch(b: wire.Batch | undefined, what: string): Batch {
  const commands = b?.commands ?? [];
  if (commands.length > MAX_BATCH_COMMANDS) {
    throw new WireError(`${what} holds ${commands.length} commands; at most ${MAX_BATCH_COMMANDS} go in one batch`);
  }
  return commands;
}

function sentPValue(p: wire.PValue | undefined, what: string): PValue {
  if (p === undefined) throw new WireError(`${what} without a pvalue`);
  return { slot: sentSlot(p.slot, `${what} slot`), ballot: sentBallot(p.ballot, what), batch: sentBatch(p.batch, what) };
}

const sentDecision = (d: wire.Decision, what: string): DecidedSlot => ({
  slot: sentSlot(d.slot, `${what} slot`),
  batch: sentBatch(d.batch, what),
});

/** Receivers draw transfer ids from [1, 2^53 - 2]. */
function transferId(n: number, what: string): number {
  const id = wireNat(n, Number.MAX_SAFE_INTEGER, `${what} id`);
  if (id === 0) throw new WireError(`${what} id 0: transfer ids start at 1`);
  return id;
}

function spaceName(s: string, what: string): string {
  if (!isSpaceName(s)) throw new WireError(`${what} space ${JSON.stringify(s.slice(0, 80))} is not a storage space name`);
  return s;
}

function transferKey(s: string, what: string): string {
  if (s.length > MAX_TRANSFER_KEY_CHARS) {
    throw new WireError(`${what} is ${s.length} characters long; storage keys are at most ${MAX_TRANSFER_KEY_CHARS}`);
  }
  return s;
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
