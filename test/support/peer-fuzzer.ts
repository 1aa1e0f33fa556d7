// Frames for fuzzing a node's peer port (issue 7, item 3), from a seeded
// PRNG: valid frames of every message type, mutated (bit flips, byte
// writes, truncation, appended bytes, swapped byte ranges, a message read
// as another type, huge numbers, odd strings, oversized batches, another
// sender) or replaced by random bytes; and mutated hellos.
//
// The corpus is stale on purpose: unmutated, each message leaves the target
// as it was (a ballot below its promise, decided slots it applied, no
// transfer running). A mutation may still turn one into a valid message that
// changes state (a higher ballot, a new decision): nobody can tell that from
// a real peer's, so `mayChangeState` flags them and the test does not send
// them. It is the test's own reading of the protocol's bounds, written
// apart from the code under test, and deliberately generous: a frame it
// lets through must change nothing.
import { Prng } from '../../src/core/prng.js';
import * as paxos from '../../src/gen/shardpax/v1/paxos.js';
import { PeerFrame, type PeerHello, type PeerMessage } from '../../src/gen/shardpax/v1/peer.js';
import { paxosMessage } from './raw-peer.js';

/** Where the target stands: its promise and the slots it applied, of its replica of `group` (1). */
export interface Target {
  readonly promisedRound: number;
  readonly applied: number;
  readonly members: readonly string[];
}

/** Group ids a frame's messages are readdressed to: the target's, and groups no node hosts (uint32, so no huge ones). */
const GROUPS = [1, 1, 1, 7, 65_535, 2 ** 32 - 1];

export type Mutation =
  | 'none'
  | 'bitflip'
  | 'bytes'
  | 'truncate'
  | 'extend'
  | 'swap'
  | 'retype'
  | 'huge'
  | 'string'
  | 'oversize'
  | 'sender'
  | 'random';

const MUTATIONS: readonly Mutation[] = [
  'none',
  'bitflip',
  'bytes',
  'truncate',
  'extend',
  'swap',
  'retype',
  'huge',
  'string',
  'oversize',
  'sender',
  'random',
];
/** Numbers past every bound of the protocol (2^40 rounds, 2^48 slots), safe or not (bigints encode as they are). */
const HUGE: ReadonlyArray<number | bigint> = [2 ** 40 + 1, 2 ** 48 + 1, 2 ** 53 - 1, 2n ** 53n, 2n ** 64n - 1n];
const ODD_STRINGS = ['', 'n9', 'n1 ', 'x'.repeat(70), '../state', '\u0000', 'k'.repeat(5000), 'état'];
/** Message types an honest peer could use to change the target's state. */
const STATEFUL = new Set(['p1a', 'p2a', 'heartbeat', 'heartbeatAck', 'decision', 'chosen', 'fence', 'catchupReply', 'propose']);
const SLOT_FIELDS = new Set(['slot', 'fromSlot', 'decidedBelow', 'logStart', 'compactedBelow']);
const MAX_ROUND = 2 ** 40;
const MAX_SLOT = 2 ** 48;
const MAX_BATCH = 4096;

export class PeerFuzzer {
  private readonly rng: Prng;
  private readonly corpus: PeerMessage[];
  /** Frames with a batch past the bound, or an empty Propose: built once, they are slow to encode. */
  private readonly oversized: Buffer[];

  constructor(
    seed: number,
    private readonly self: string,
    private readonly target: Target,
  ) {
    this.rng = new Prng(seed);
    this.corpus = staleMessages(target, this.rng);
    this.oversized = oversizedMessages(target).map((m) => this.encode(self, [m], undefined));
  }

  /** A frame from `self` after the handshake, and how it was made. */
  frame(): { bytes: Buffer; mutation: Mutation } {
    const count = this.rng.int(1, 3);
    const messages = Array.from({ length: count }, () => ({ ...this.pick(this.corpus), group: this.pick(GROUPS) }));
    const mutation = this.pick(MUTATIONS);
    return { bytes: this.mutate(this.self, messages, undefined, mutation), mutation };
  }

  /** A first frame for a new stream: a hello, most often mutated. */
  hello(clusterId: string, to: string): Buffer {
    const from = this.rng.chance(0.5) ? this.self : this.pick(['n9', to, ...this.target.members]);
    const hello: PeerHello = { clusterId, to };
    if (this.rng.chance(0.3)) {
      const field = this.pick(['clusterId', 'to'] as const);
      return this.encode(from, [], { ...hello, [field]: this.pick(ODD_STRINGS) });
    }
    return this.mutate(from, this.rng.chance(0.2) ? [this.pick(this.corpus)] : [], hello, this.pick(MUTATIONS));
  }

  private mutate(from: string, messages: PeerMessage[], hello: PeerHello | undefined, m: Mutation): Buffer {
    const r = this.rng;
    switch (m) {
      case 'none':
        return this.encode(from, messages, hello);
      case 'bitflip': {
        const b = this.encode(from, messages, hello);
        for (let i = r.int(1, 8); i > 0; i--) {
          const at = r.int(0, b.length - 1);
          b[at] = (b[at] ?? 0) ^ (1 << r.int(0, 7));
        }
        return b;
      }
      case 'bytes': {
        const b = this.encode(from, messages, hello);
        for (let i = r.int(1, 4); i > 0; i--) b[r.int(0, b.length - 1)] = r.int(0, 255);
        return b;
      }
      case 'truncate': {
        const b = this.encode(from, messages, hello);
        return b.subarray(0, r.int(0, b.length - 1));
      }
      case 'extend':
        return Buffer.concat([this.encode(from, messages, hello), this.randomBytes(r.int(1, 16))]);
      case 'swap':
        return this.swapRanges(this.encode(from, messages, hello));
      case 'retype':
        return this.encode(from, messages.map((x) => this.retype(x)), hello);
      case 'huge':
        return this.withHugeNumber(from, messages, hello);
      case 'string':
        return this.encode(from, messages.map((x) => this.withOddString(x)), hello);
      case 'oversize':
        return hello === undefined ? this.pick(this.oversized) : this.encode(from, messages, hello);
      case 'sender':
        return this.encode(this.pick(['n2', 'n3', 'n9', '', 'x'.repeat(100)]), messages, hello);
      case 'random':
        return this.randomBytes(r.int(0, 200));
    }
  }

  private encode(from: string, messages: PeerMessage[], hello: PeerHello | undefined): Buffer {
    return Buffer.from(PeerFrame.encode({ from, messages, hello }).finish());
  }

  private swapRanges(b: Buffer): Buffer {
    if (b.length < 4) return b;
    const len = this.rng.int(1, Math.floor(b.length / 2));
    const i = this.rng.int(0, b.length - 2 * len);
    const j = this.rng.int(i + len, b.length - len);
    const out = Buffer.from(b);
    b.copy(out, i, j, j + len);
    b.copy(out, j, i, i + len);
    return out;
  }

  /** One Paxos message's body read as another type: the same bytes, other fields. */
  private retype(m: PeerMessage): PeerMessage {
    if (m.body?.$case !== 'paxos' || m.body.value.body === undefined) return m;
    const bytes = paxos.PaxosMessage.encode(m.body.value).finish();
    // PaxosMessage's body is field 1..16 (paxos.proto): rewrite the outer tag (one byte up to field 15).
    const out = Uint8Array.from(bytes);
    out[0] = ((this.rng.int(1, 15) << 3) | 2) & 0xff;
    try {
      return { body: { $case: 'paxos', value: paxos.PaxosMessage.decode(out) }, group: m.group };
    } catch {
      return m;
    }
  }

  /** Sets one numeric field somewhere in the frame past every bound. */
  private withHugeNumber(from: string, messages: PeerMessage[], hello: PeerHello | undefined): Buffer {
    const copy = structuredClone(messages);
    const fields = numericFields(copy);
    if (fields.length > 0) {
      const chosen = this.pick(fields);
      chosen.holder[chosen.key] = this.pick(HUGE);
    }
    return this.encode(from, copy, hello);
  }

  private withOddString(m: PeerMessage): PeerMessage {
    const copy = structuredClone(m);
    const fields = stringFields(copy);
    const chosen = fields.length === 0 ? undefined : this.pick(fields);
    if (chosen !== undefined) chosen.holder[chosen.key] = this.pick(ODD_STRINGS);
    return copy;
  }

  private randomBytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.rng.int(0, 255)));
  }

  private pick<T>(from: readonly T[]): T {
    const x = from[this.rng.int(0, from.length - 1)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  }
}

/**
 * How the target must take a frame on `self`'s stream, as the generated
 * decoder (the target's too) sees it: dropped whole (it does not decode,
 * repeats the hello, or names another sender), or read message by message;
 * or not to be sent, because it could be a valid message that changes the
 * target's state.
 */
export type FrameClass = 'frame-undecodable' | 'frame-repeated-hello' | 'frame-wrong-sender' | 'messages' | 'may-change-state';

export function classify(bytes: Buffer, self: string, members: readonly string[], hosted: readonly number[]): FrameClass {
  let f: PeerFrame;
  try {
    f = PeerFrame.decode(bytes);
  } catch {
    return 'frame-undecodable';
  }
  if (f.hello !== undefined) return 'frame-repeated-hello';
  if (f.from !== self) return 'frame-wrong-sender';
  const changes = f.messages.some((m) => {
    if (m.group === undefined || !hosted.includes(m.group)) return false; // dropped before any group sees it
    const body = m.body?.$case === 'paxos' ? m.body.value.body : undefined;
    if (body === undefined || !STATEFUL.has(body.$case)) return false;
    if (body.$case === 'propose' && body.value.commands.length === 0) return false; // proposes nothing
    return withinBounds(body.value, members);
  });
  return changes ? 'may-change-state' : 'messages';
}

/** Whether a first frame is a hello the target accepts from a member: not sent, it would take over a live link. */
export function validHello(bytes: Buffer, clusterId: string, to: string, dialers: readonly string[]): boolean {
  try {
    const f = PeerFrame.decode(bytes);
    return f.hello?.clusterId === clusterId && f.hello.to === to && f.messages.length === 0 && dialers.includes(f.from);
  } catch {
    return false;
  }
}

/** Every ballot a member's within [1, MAX_ROUND], every slot within MAX_SLOT, every batch within MAX_BATCH. */
function withinBounds(v: unknown, members: readonly string[]): boolean {
  if (Array.isArray(v)) return v.every((x) => withinBounds(x, members));
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return true;
  const o = v as Record<string, unknown>;
  if (typeof o.round === 'number' && typeof o.leader === 'string') {
    if (o.round < 1 || o.round > MAX_ROUND || !members.includes(o.leader)) return false;
  }
  if (Array.isArray(o.commands) && o.commands.length > MAX_BATCH) return false;
  for (const [k, x] of Object.entries(o)) {
    if (SLOT_FIELDS.has(k) && typeof x === 'number' && x > MAX_SLOT) return false;
    if (!withinBounds(x, members)) return false;
  }
  return true;
}

type Field = { holder: Record<string, unknown>; key: string };

function fieldsOf(v: unknown, type: 'number' | 'string', out: Field[] = []): Field[] {
  if (Array.isArray(v)) {
    for (const x of v) fieldsOf(x, type, out);
  } else if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
    const o = v as Record<string, unknown>;
    for (const [key, x] of Object.entries(o)) {
      if (typeof x === type && key !== '$case') out.push({ holder: o, key });
      else fieldsOf(x, type, out);
    }
  }
  return out;
}

/** Numbers of the protocol: not the uint32 ids the encoder refuses to make huge (the group: GROUPS readdresses; the shard). */
const numericFields = (v: unknown): Field[] => fieldsOf(v, 'number').filter((f) => f.key !== 'group' && f.key !== 'shard');
const stringFields = (v: unknown): Field[] => fieldsOf(v, 'string');

/** Messages whose batch is past the bound (or a Propose of nothing). */
function oversizedMessages(t: Target): PeerMessage[] {
  const commands = (n: number) => Array.from({ length: n }, () => new Uint8Array(0));
  const stale = { round: Math.max(1, t.promisedRound - 1), leader: 'n1' };
  return [
    paxosMessage({ $case: 'propose', value: { commands: [] } }),
    paxosMessage({ $case: 'propose', value: { commands: commands(MAX_BATCH + 1) } }),
    paxosMessage({ $case: 'decision', value: { slot: t.applied, batch: { commands: commands(MAX_BATCH + 1) } } }),
    paxosMessage({ $case: 'p2a', value: { pvalue: { slot: t.applied, ballot: stale, batch: { commands: commands(MAX_BATCH + 1) } } } }),
    paxosMessage({ $case: 'catchupReply', value: { decisions: [{ slot: t.applied, batch: { commands: commands(MAX_BATCH + 1) } }], logStart: 0 } }),
  ];
}

/** One message of every type that, as is, leaves the target as it was. */
function staleMessages(t: Target, rng: Prng): PeerMessage[] {
  // Below the promise: a lower round, or the same round with the lowest member id ('n1' < 'n2', 'n3').
  const stale = { round: Math.max(1, t.promisedRound - 1), leader: 'n1' };
  const applied = Math.max(0, t.applied - 1);
  const cmd = new Uint8Array([10, 2, 8, 1]);
  const id = rng.int(1, 2 ** 31);
  return [
    paxosMessage({ $case: 'p1a', value: { ballot: stale, fromSlot: t.applied } }),
    paxosMessage({
      $case: 'p1b',
      value: {
        ballot: stale,
        fromSlot: applied,
        accepted: [{ slot: t.applied, ballot: stale, batch: { commands: [cmd] } }],
        nextSlot: t.applied + 1,
        compactedBelow: applied,
      },
    }),
    paxosMessage({ $case: 'p2a', value: { pvalue: { slot: t.applied + 3, ballot: stale, batch: { commands: [cmd, cmd] } } } }),
    paxosMessage({ $case: 'p2b', value: { ballot: stale, slot: t.applied } }),
    paxosMessage({ $case: 'decision', value: { slot: applied, batch: { commands: [cmd] } } }),
    paxosMessage({ $case: 'chosen', value: { slot: applied, ballot: stale } }),
    paxosMessage({ $case: 'fence', value: { ballot: stale } }),
    paxosMessage({ $case: 'fenceAck', value: { ballot: stale, bound: t.applied } }),
    paxosMessage({ $case: 'heartbeatAck', value: { ballot: stale } }),
    paxosMessage({ $case: 'propose', value: { commands: [cmd] } }),
    paxosMessage({ $case: 'heartbeat', value: { ballot: stale, decidedBelow: applied } }),
    paxosMessage({ $case: 'catchupRequest', value: { fromSlot: applied } }),
    paxosMessage({ $case: 'catchupReply', value: { decisions: [{ slot: applied, batch: { commands: [cmd] } }], logStart: applied } }),
    paxosMessage({ $case: 'transferRequest', value: { id, space: 'sessions', fromKey: '' } }),
    paxosMessage({
      $case: 'transferChunk',
      value: { id, slot: t.applied, space: 'state', entries: [{ key: 'k/a', value: cmd }], next: 'k/b', fromKey: '' },
    }),
    paxosMessage({ $case: 'transferReset', value: { id } }),
    { body: { $case: 'clientCommand', value: { kind: { $case: 'register', value: { nonce: id } }, shard: 0 } }, group: 1 },
    { body: { $case: 'clientResult', value: { kind: { $case: 'registered', value: { nonce: id, session: 1 } }, shard: 0 } }, group: 1 },
  ];
}
