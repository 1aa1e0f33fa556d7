// Pair assertions across the disk (STYLE.md) for the Paxos records: a record
// is checked before it is written (a bad one is our bug: AssertionError) and
// after it is read back (a bad one is damaged storage: StorageCorruptionError,
// never an assertion).
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../src/core/assert.js';
import { ballot, type Ballot, nodeId, slot } from '../src/core/ids.js';
import { StorageCorruptionError } from '../src/core/storage.js';
import * as wire from '../src/gen/shardpax/v1/paxos.js';
import { records } from '../src/paxos/codec.js';

const b = ballot(7, nodeId('n2'));
const pvalue = { slot: slot(12), ballot: b, batch: [new Uint8Array([1, 2]), new Uint8Array([3])] };
const meta = { applied: 40, compactedBelow: 30, transferId: 0 };

/** Bytes no protobuf decoder accepts: field 1, wire type 7 (there is no such type). */
const GARBAGE = new Uint8Array([0x0f, 0xff, 0xff]);

describe('Paxos records', () => {
  it('round-trip', () => {
    expect(records.decodeBallot(records.encodeBallot(b))).toEqual(b);
    expect(records.decodeCompactedBelow(records.encodeCompactedBelow(slot(9)))).toBe(9);
    expect(records.decodePValue(records.encodePValue(pvalue))).toEqual(pvalue);
    expect(records.decodeDecided(records.encodeDecided({ slot: slot(3), batch: pvalue.batch }))).toEqual({
      slot: 3,
      batch: pvalue.batch,
    });
    expect(records.decodeMeta(records.encodeMeta(meta))).toEqual(meta);
  });

  it('are checked before they are written: a bad one is our bug', () => {
    const bottom = { round: 0, leader: '' } as Ballot;
    expect(() => records.encodeBallot(bottom)).toThrow(AssertionError);
    expect(() => records.encodePValue({ ...pvalue, slot: -1 as never })).toThrow(AssertionError);
    expect(() => records.encodeMeta({ applied: 5, compactedBelow: 6, transferId: 0 })).toThrow(AssertionError);
    expect(() => records.encodeMeta({ ...meta, transferId: 0.5 })).toThrow(AssertionError);
  });

  it('are checked after they are read: a bad one is corruption, not an assertion', () => {
    const decoders = [records.decodeBallot, records.decodeCompactedBelow, records.decodePValue, records.decodeDecided, records.decodeMeta];
    for (const decode of decoders) {
      expect(() => decode(GARBAGE)).toThrow(StorageCorruptionError);
      expect(() => decode(GARBAGE)).toThrow(/--rebuild/);
    }
    // Well-formed protobuf, impossible values.
    const noBallot = wire.AcceptorRecord.encode({ promised: undefined, compactedBelow: 0 }).finish();
    expect(() => records.decodeBallot(noBallot)).toThrow(/holds no ballot/);
    const badLeader = wire.AcceptorRecord.encode({ promised: { round: 3, leader: 'not a node id!' }, compactedBelow: 0 }).finish();
    expect(() => records.decodeBallot(badLeader)).toThrow(StorageCorruptionError);
    const hugeSlot = wire.PValue.encode({ slot: 2 ** 60, ballot: { round: 1, leader: 'n1' }, batch: { commands: [] } }).finish();
    expect(() => records.decodePValue(hugeSlot)).toThrow(StorageCorruptionError);
    const inverted = wire.ReplicaMeta.encode({ applied: 5, compactedBelow: 6, transferId: 0 }).finish();
    expect(() => records.decodeMeta(inverted)).toThrow(/log start past its applied slot/);
  });
});
