// Nothing from the network reaches an assertion (issue 7, item 3). Each rule
// of the door has a case it must refuse and the honest messages it must let
// through: decoding's bounds (src/paxos/codec.ts, src/rpc/codec.ts), the
// checks on arrival (src/paxos/validate.ts), the KV group server's own door,
// and how drops are counted and logged.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DropCounter } from '../src/core/drop-counter.js';
import { BOTTOM_BALLOT, type Ballot, ballot, type NodeId, nodeId, sessionId, seq, shardId, slot } from '../src/core/ids.js';
import * as wire from '../src/gen/shardpax/v1/paxos.js';
import { KvGroupServer } from '../src/kv/group-server.js';
import { paxosFromWire, paxosToWire } from '../src/paxos/codec.js';
import { MAX_BATCH_COMMANDS, MAX_ROUND, MAX_SLOT, MAX_TRANSFER_KEY_CHARS } from '../src/paxos/limits.js';
import type { PaxosMessage, PValue } from '../src/paxos/messages.js';
import { type InvalidReason, validatePeerMessage } from '../src/paxos/validate.js';
import { AmoApplication } from '../src/rpc/amo-application.js';
import { amoCommandFromWire, MAX_SEQ, shardedCommandCodec, WireError } from '../src/rpc/codec.js';
import type { AmoCommand } from '../src/rpc/messages.js';
import { DropLog } from '../src/server/drop-log.js';
import { parseTuning } from '../src/server/server-node.js';
import { Counter } from './support/counter.js';
import { mapStores } from './support/map-store.js';
import { Scenario } from './support/scenario.js';

const [s0, s1, s2, s9] = ['s0', 's1', 's2', 's9'].map(nodeId) as [NodeId, NodeId, NodeId, NodeId];
const group = { self: s0, members: new Set([s0, s1, s2]) };
const b = (round: number, leader: NodeId): Ballot => ballot(round, leader);
const cmd = new Uint8Array([1, 2, 3]);
const pv = (s: number, at: Ballot, batch: Uint8Array[] = []): PValue => ({ slot: slot(s), ballot: at, batch });
function p1b(promise: Ballot, accepted: PValue[], o: { compactedBelow?: number; fromSlot?: number; next?: number } = {}): PaxosMessage {
  return {
    type: 'P1b',
    ballot: promise,
    fromSlot: slot(o.fromSlot ?? 0),
    accepted,
    next: o.next === undefined ? undefined : slot(o.next),
    compactedBelow: slot(o.compactedBelow ?? 0),
  };
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('validatePeerMessage: what an honest member sends passes', () => {
  const honest: PaxosMessage[] = [
    { type: 'P1a', ballot: b(3, s1), fromSlot: slot(7) },
    p1b(b(3, s2), [pv(5, b(2, s1), [cmd])], { compactedBelow: 4 }),
    p1b(b(3, s2), [pv(4, b(3, s2))], { compactedBelow: 4, fromSlot: 2, next: 5 }),
    { type: 'P2a', pvalue: { slot: slot(9), ballot: b(3, s1), batch: [cmd] } },
    { type: 'P2b', ballot: b(4, s2), slot: slot(9) },
    { type: 'P2b', ballot: b(4, s0), slot: slot(9) }, // an acceptor answers with the promise it holds, ours too
    { type: 'Decision', slot: slot(9), batch: [] },
    { type: 'Chosen', slot: slot(9), ballot: b(3, s1) },
    { type: 'Fence', ballot: b(5, s1) },
    { type: 'FenceAck', ballot: b(5, s2), bound: slot(30) },
    { type: 'Propose', commands: [cmd] },
    { type: 'Heartbeat', ballot: b(3, s1), decidedBelow: slot(12) },
    { type: 'HeartbeatAck', ballot: b(3, s2) },
    { type: 'HeartbeatAck', ballot: BOTTOM_BALLOT }, // an acceptor that promised nothing yet
    { type: 'CatchupRequest', fromSlot: slot(0) },
    { type: 'CatchupReply', decisions: [], logStart: slot(50) },
    { type: 'CatchupReply', decisions: [5, 6, 7].map((s) => ({ slot: slot(s), batch: [cmd] })), logStart: slot(5) },
    { type: 'TransferRequest', id: 17, space: 'state', fromKey: '' },
    { type: 'TransferChunk', id: 17, slot: slot(40), fromKey: '', chunk: { space: 'state', entries: [['k/a', cmd]] }, next: 'k/b' },
    { type: 'TransferReset', id: 17 },
  ];
  for (const m of honest) {
    it(`${m.type} ${JSON.stringify(m).slice(0, 90)}`, () => {
      expect(validatePeerMessage(s1, m, group)).toBeUndefined();
    });
  }
});

describe('validatePeerMessage: each rule refuses what it should', () => {
  const refused: Array<[string, NodeId, PaxosMessage, InvalidReason]> = [
    // Issue 7's forged message, had it decoded: a P1a from a node that is not a member.
    ['a stranger', s9, { type: 'P1a', ballot: b(2 ** 40, s9), fromSlot: slot(0) }, 'sender-not-member'],
    ['a message in our own name', s0, { type: 'Decision', slot: slot(1), batch: [] }, 'sender-not-member'],
    ['a P1a for another leader', s1, { type: 'P1a', ballot: b(3, s2), fromSlot: slot(0) }, 'ballot-not-senders'],
    ['a P1a for a stranger', s1, { type: 'P1a', ballot: b(3, s9), fromSlot: slot(0) }, 'ballot-not-senders'],
    ['a heartbeat of another leader', s1, { type: 'Heartbeat', ballot: b(3, s2), decidedBelow: slot(0) }, 'ballot-not-senders'],
    [
      'a P2a of another leader',
      s1,
      { type: 'P2a', pvalue: { slot: slot(1), ballot: b(3, s2), batch: [] } },
      'ballot-not-senders',
    ],
    ['a Chosen of another leader', s1, { type: 'Chosen', slot: slot(1), ballot: b(3, s2) }, 'ballot-not-senders'],
    ['a fence of another node', s1, { type: 'Fence', ballot: b(3, s2) }, 'ballot-not-senders'],
    ['a fence ack promising a stranger', s1, { type: 'FenceAck', ballot: b(3, s9), bound: slot(0) }, 'ballot-leader-not-member'],
    ['a heartbeat ack promising a stranger', s1, { type: 'HeartbeatAck', ballot: b(3, s9) }, 'ballot-leader-not-member'],
    ['a P2b promising a stranger', s1, { type: 'P2b', ballot: b(3, s9), slot: slot(1) }, 'ballot-leader-not-member'],
    ['a P1b promising a stranger', s1, p1b(b(3, s9), []), 'ballot-leader-not-member'],
    ['a P1b with a value of a stranger', s1, p1b(b(3, s2), [pv(1, b(2, s9))]), 'ballot-leader-not-member'],
    ['a P1b with a value below its compaction point', s1, p1b(b(3, s2), [pv(3, b(2, s1))], { compactedBelow: 4 }), 'accepted-below-compaction'],
    ['a P1b with a value before its page', s1, p1b(b(3, s2), [pv(3, b(2, s1))], { fromSlot: 4 }), 'accepted-out-of-page'],
    ['a P1b with a value past its page', s1, p1b(b(3, s2), [pv(7, b(2, s1))], { fromSlot: 4, next: 7 }), 'accepted-out-of-page'],
    ['a P1b with a value above its promise', s1, p1b(b(3, s2), [pv(5, b(4, s1))], { compactedBelow: 4 }), 'accepted-above-promise'],
    [
      'a catch-up reply with a gap',
      s1,
      { type: 'CatchupReply', decisions: [5, 7].map((s) => ({ slot: slot(s), batch: [] })), logStart: slot(0) },
      'catchup-not-consecutive',
    ],
    [
      'a catch-up reply below its log start',
      s1,
      { type: 'CatchupReply', decisions: [{ slot: slot(3), batch: [] }], logStart: slot(4) },
      'catchup-below-log-start',
    ],
  ];
  for (const [what, from, m, reason] of refused) {
    it(`${what}: ${reason}`, () => {
      expect(validatePeerMessage(from, m, group)?.reason).toBe(reason);
    });
  }
});

describe('decoding a Paxos message checks every field on its own', () => {
  const p1a = (round: number, leader = 's1', fromSlot = 0): wire.PaxosMessage => ({
    body: { $case: 'p1a', value: { ballot: { round, leader }, fromSlot } },
  });
  const decision = (commands: number, s = 1): wire.PaxosMessage => ({
    body: { $case: 'decision', value: { slot: s, batch: { commands: Array.from({ length: commands }, () => cmd) } } },
  });
  const transferRequest = (id: number, space: string, fromKey: string): wire.PaxosMessage => ({
    body: { $case: 'transferRequest', value: { id, space, fromKey } },
  });
  const chunk = (key: string, next: string | undefined): wire.PaxosMessage => ({
    body: { $case: 'transferChunk', value: { id: 1, slot: 1, space: 'state', entries: [{ key, value: cmd }], next, fromKey: '' } },
  });
  const long = 'k'.repeat(MAX_TRANSFER_KEY_CHARS + 1);

  const refused: Array<[string, wire.PaxosMessage]> = [
    ["issue 7's ballot round 2^53-1", p1a(2 ** 53 - 1, 'n9')],
    ['a round past MAX_ROUND', p1a(MAX_ROUND + 1)],
    ['the bottom ballot', p1a(0, '')],
    ['round 0', p1a(0)],
    ['a leader that is not a node id', p1a(3, 'not an id!')],
    ['an empty leader', p1a(3, '')],
    ['no ballot', { body: { $case: 'p2b', value: { ballot: undefined, slot: 1 } } }],
    ['the bottom ballot as a P2b promise', { body: { $case: 'p2b', value: { ballot: { round: 0, leader: '' }, slot: 1 } } }],
    ['a fence of round 0', { body: { $case: 'fence', value: { ballot: { round: 0, leader: 's1' } } } }],
    [
      'a P1b page past MAX_SLOT',
      {
        body: {
          $case: 'p1b',
          value: { ballot: { round: 3, leader: 's1' }, fromSlot: 0, accepted: [], nextSlot: MAX_SLOT + 1, compactedBelow: 0 },
        },
      },
    ],
    ['a slot past MAX_SLOT', p1a(3, 's1', MAX_SLOT + 1)],
    ['a decided slot past MAX_SLOT', decision(1, MAX_SLOT + 1)],
    ['a batch past MAX_BATCH_COMMANDS', decision(MAX_BATCH_COMMANDS + 1)],
    ['an empty Propose', { body: { $case: 'propose', value: { commands: [] } } }],
    ['a P2a without a pvalue', { body: { $case: 'p2a', value: { pvalue: undefined } } }],
    [
      'a P1b value of the bottom ballot',
      {
        body: {
          $case: 'p1b',
          value: {
            ballot: { round: 3, leader: 's1' },
            fromSlot: 0,
            accepted: [{ slot: 1, ballot: { round: 0, leader: '' }, batch: undefined }],
            nextSlot: 0,
            compactedBelow: 0,
          },
        },
      },
    ],
    ['transfer id 0', transferRequest(0, 'state', '')],
    ['a space that is no storage space name', transferRequest(1, '../state', '')],
    ['a transfer key past the bound', transferRequest(1, 'state', long)],
    ['a chunk key past the bound', chunk(long, undefined)],
    ['a chunk next key past the bound', chunk('k/a', long)],
    ['no body', { body: undefined }],
  ];
  for (const [what, w] of refused) {
    it(`refuses ${what} with a WireError`, () => {
      expect(thrown(() => paxosFromWire(w))).toBeInstanceOf(WireError);
    });
  }

  it('accepts the bounds themselves', () => {
    expect(paxosFromWire(p1a(MAX_ROUND, 's1', MAX_SLOT))).toEqual({ type: 'P1a', ballot: b(MAX_ROUND, s1), fromSlot: MAX_SLOT });
    expect(paxosFromWire(decision(MAX_BATCH_COMMANDS))).toMatchObject({ type: 'Decision', slot: 1 });
    expect(paxosFromWire(chunk('k'.repeat(MAX_TRANSFER_KEY_CHARS), undefined))).toMatchObject({ type: 'TransferChunk' });
    // Only a HeartbeatAck carries the bottom ballot: the promise of an acceptor that promised nothing yet.
    expect(paxosFromWire({ body: { $case: 'heartbeatAck', value: { ballot: { round: 0, leader: '' } } } })).toEqual({
      type: 'HeartbeatAck',
      ballot: BOTTOM_BALLOT,
    });
  });

  it('mutated encodings decode to a message within every bound, or to a WireError: nothing else', () => {
    const samples: PaxosMessage[] = [
      { type: 'P1a', ballot: b(3, s1), fromSlot: slot(7) },
      p1b(b(3, s2), [pv(5, b(2, s1), [cmd])], { compactedBelow: 4, fromSlot: 4, next: 6 }),
      { type: 'P2a', pvalue: { slot: slot(9), ballot: b(3, s1), batch: [cmd, cmd] } },
      { type: 'Chosen', slot: slot(9), ballot: b(3, s1) },
      { type: 'FenceAck', ballot: b(5, s2), bound: slot(30) },
      { type: 'Heartbeat', ballot: b(3, s1), decidedBelow: slot(12) },
      { type: 'CatchupReply', decisions: [5, 6].map((s) => ({ slot: slot(s), batch: [cmd] })), logStart: slot(5) },
      { type: 'TransferChunk', id: 17, slot: slot(40), fromKey: '', chunk: { space: 'state', entries: [['k/a', cmd]] }, next: 'k/b' },
    ];
    const encoded = samples.map((m) => wire.PaxosMessage.encode(paxosToWire(m)).finish());
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: encoded.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (which, edits) => {
          const bytes = Uint8Array.from(encoded[which] ?? []);
          for (const [at, value] of edits) bytes[at % bytes.length] = value;
          let w: wire.PaxosMessage;
          try {
            w = wire.PaxosMessage.decode(bytes);
          } catch {
            return; // not protobuf: the transport drops the frame
          }
          let m: PaxosMessage;
          try {
            m = paxosFromWire(w);
          } catch (err) {
            expect(err).toBeInstanceOf(WireError);
            return;
          }
          for (const x of [m.type === 'P2a' ? m.pvalue.ballot : undefined, 'ballot' in m ? m.ballot : undefined]) {
            if (x !== undefined) expect(x.round >= 1 && x.round <= MAX_ROUND).toBe(true);
          }
          const fields: Record<string, unknown> = { ...m };
          for (const s of ['slot', 'fromSlot', 'compactedBelow', 'decidedBelow', 'logStart']) {
            const v = fields[s];
            if (typeof v === 'number') expect(v).toBeLessThanOrEqual(MAX_SLOT);
          }
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('decoding a session command bounds its numbers', () => {
  const request = (session: number, s: number, ackedBelow: number) =>
    amoCommandFromWire({ kind: { $case: 'request', value: { session, seq: s, ackedBelow, command: cmd } }, shard: 0 });

  it('refuses session ids and seqs past MAX_SEQ (2^53 - 1 overflowed the table and crashed every replica)', () => {
    expect(thrown(() => request(1, 2 ** 53 - 1, 2 ** 53 - 1))).toBeInstanceOf(WireError);
    expect(thrown(() => request(1, 0, MAX_SEQ + 1))).toBeInstanceOf(WireError);
    expect(thrown(() => request(MAX_SEQ + 1, 0, 0))).toBeInstanceOf(WireError);
    expect(request(MAX_SEQ, MAX_SEQ, MAX_SEQ)).toMatchObject({ kind: 'request', seq: MAX_SEQ });
  });

  it('a command at the bounds applies without tripping the table', () => {
    const amo = new AmoApplication(new Counter());
    const stores = mapStores();
    const reg = amo.apply({ kind: 'register', nonce: 1 }, stores);
    expect(reg.kind).toBe('registered');
    const session = reg.kind === 'registered' ? reg.session : sessionId(0);
    const command: AmoCommand = { kind: 'request', session, seq: seq(MAX_SEQ), ackedBelow: seq(MAX_SEQ), command: cmd };
    const bytes = shardedCommandCodec.encode({ shard: shardId(0), command });
    expect(amo.apply(shardedCommandCodec.decode(bytes).command, stores)).toMatchObject({ kind: 'result', seq: MAX_SEQ });
    amo.checkInvariants(stores.sessions);
  });
});

describe("the KV group server's door", () => {
  it('drops a stranger and client messages from peers, lets a member through, and keeps serving', () => {
    const sc = new Scenario(7);
    sc.electLeader();
    const target = sc.servers.find((s) => s !== sc.leader()) ?? s0;
    const server = () => sc.server(target);
    const member = sc.servers.find((s) => s !== target) ?? s1;
    const promised = server().paxos.acceptor.ballot;
    const deliver = (from: NodeId, m: Parameters<KvGroupServer['onMessage']>[1]) =>
      sc.sim.input(target, `inject ${m.type} from ${from}`, (role) => role.onMessage(from, m));

    deliver(s9, { type: 'P1a', ballot: b(2 ** 53 - 1, s9), fromSlot: slot(0) });
    deliver(member, { type: 'ClientCommand', shard: shardId(0), command: { kind: 'register', nonce: 5 } });
    deliver(member, { type: 'ClientResult', shard: shardId(0), result: { kind: 'registered', nonce: 5, session: sessionId(1) } });
    sc.sim.runFor(200);
    expect(Object.fromEntries(server().paxos.invalid.byReason())).toEqual({
      'sender-not-member': 1,
      'client-command-from-peer': 1,
      'client-result-at-server': 1,
    });
    expect(server().paxos.acceptor.ballot).toEqual(promised);
    sc.load(3);

    // A member's own higher ballot is not invalid: the door must let it through.
    const higher = b(server().paxos.acceptor.ballot.round + 1, member);
    deliver(member, { type: 'P1a', ballot: higher, fromSlot: slot(0) });
    expect(server().paxos.acceptor.ballot).toEqual(higher);
    expect(server().paxos.invalid.total).toBe(3);
  });
});

describe('counting and logging drops', () => {
  it('keeps counts by reason and the latest drop, its detail cut short', () => {
    const c = new DropCounter();
    c.count('a', 'first');
    c.count('b', 'x'.repeat(1000));
    c.count('a', 'third');
    expect(Object.fromEntries(c.byReason())).toEqual({ a: 2, b: 1 });
    expect(c.total).toBe(3);
    expect(c.latest).toEqual({ reason: 'a', detail: 'third' });
    c.count('c', 'y'.repeat(1000));
    expect(c.latest?.detail.length).toBeLessThan(300);
  });

  it('logs at most one line per interval, with the count since the last line and an example', () => {
    const transport = new DropCounter();
    const door = new DropCounter();
    const lines: string[] = [];
    const log = new DropLog('node n1', [transport, door], (l) => lines.push(l), 10_000);
    log.poll(0);
    expect(lines).toEqual([]); // nothing dropped, nothing logged
    transport.count('handshake-missing', 'the first frame from "n9" is not a hello alone');
    log.poll(1_000);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('node n1: dropped 1 invalid input from the network');
    expect(lines[0]).toContain('latest: handshake-missing: the first frame from "n9"');
    for (let i = 0; i < 500; i++) door.count('sender-not-member', `P1a from x${i}`);
    for (let t = 2_000; t < 11_000; t += 1_000) log.poll(t);
    expect(lines).toHaveLength(1); // a flood does not flood the log
    log.poll(11_000);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain('dropped 500 invalid inputs from the network in the last 10 s');
    expect(lines[1]).toContain('handshake-missing 1, sender-not-member 500');
    expect(lines[1]).toContain('latest: sender-not-member: P1a from x499');
    log.poll(30_000);
    expect(lines).toHaveLength(2);
  });
});

describe('tuning', () => {
  it('refuses a maxBatch that peers would refuse', () => {
    expect(() => parseTuning(JSON.stringify({ maxBatch: MAX_BATCH_COMMANDS + 1 }))).toThrow(/maxBatch must be at most 4096/);
    expect(parseTuning(JSON.stringify({ maxBatch: MAX_BATCH_COMMANDS }))).toEqual({ maxBatch: MAX_BATCH_COMMANDS });
  });
});
