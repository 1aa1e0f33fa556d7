// The one mapping between this layer's domain types and the generated wire
// types (STYLE.md 5). Decoding checks every number it turns into an id: what
// arrives from a client or a peer is refused with a WireError, never handed
// to a constructor that asserts.
import { assertNever } from '../core/assert.js';
import type { Codec } from '../core/application.js';
import { type ConfigNum, configNum, type Seq, type SessionId, type ShardId, seq, sessionId, shardId } from '../core/ids.js';
import type { PeerMessage } from '../gen/shardpax/v1/peer.js';
import * as wire from '../gen/shardpax/v1/session.js';
import type { AmoCommand, AmoResult, RpcMessage, ShardedCommand } from './messages.js';

export function amoCommandToWire(c: AmoCommand, shard: ShardId): wire.AmoCommand {
  return { ...amoKindToWire(c), shard };
}

function amoKindToWire(c: AmoCommand): wire.AmoCommand {
  switch (c.kind) {
    case 'register':
      return { kind: { $case: 'register', value: { nonce: c.nonce } }, shard: 0 };
    case 'request':
      return {
        kind: {
          $case: 'request',
          value: { session: c.session, seq: c.seq, ackedBelow: c.ackedBelow, command: c.command },
        },
        shard: 0,
      };
    case 'read':
      return { kind: { $case: 'read', value: { id: c.id, command: c.command } }, shard: 0 };
    default:
      return assertNever(c, 'AmoCommand');
  }
}

export function amoCommandFromWire(w: wire.AmoCommand): AmoCommand {
  const k = w.kind;
  if (k === undefined) throw new WireError('AmoCommand without a kind');
  switch (k.$case) {
    case 'register':
      return { kind: 'register', nonce: k.value.nonce };
    case 'request':
      return {
        kind: 'request',
        session: wireSession(k.value.session),
        seq: wireSeq(k.value.seq, 'seq'),
        ackedBelow: wireSeq(k.value.ackedBelow, 'acked_below'),
        command: k.value.command,
      };
    case 'read':
      return { kind: 'read', id: k.value.id, command: k.value.command };
    default:
      return assertNever(k, 'AmoCommand wire kind');
  }
}

export function amoResultToWire(r: AmoResult, shard: ShardId): wire.AmoResult {
  return { ...amoResultKindToWire(r), shard };
}

function amoResultKindToWire(r: AmoResult): Omit<wire.AmoResult, 'shard'> {
  switch (r.kind) {
    case 'registered':
      return { kind: { $case: 'registered', value: { nonce: r.nonce, session: r.session } } };
    case 'result':
      return { kind: { $case: 'result', value: { session: r.session, seq: r.seq, result: r.result } } };
    case 'expired':
      return { kind: { $case: 'expired', value: { session: r.session, seq: r.seq } } };
    case 'read':
      return { kind: { $case: 'read', value: { id: r.id, result: r.result } } };
    case 'wrongGroup': {
      // The refused command travels without its payload: its ids tell the client which one it was.
      const refused = amoCommandToWire(withoutPayload(r.refused), r.shard);
      return { kind: { $case: 'wrongGroup', value: { shard: r.shard, configNum: r.configNum, refused } } };
    }
    default:
      return assertNever(r, 'AmoResult');
  }
}

export function amoResultFromWire(w: wire.AmoResult): AmoResult {
  const k = w.kind;
  if (k === undefined) throw new WireError('AmoResult without a kind');
  switch (k.$case) {
    case 'registered':
      return { kind: 'registered', nonce: k.value.nonce, session: wireSession(k.value.session) };
    case 'result':
      return { kind: 'result', session: wireSession(k.value.session), seq: wireSeq(k.value.seq, 'seq'), result: k.value.result };
    case 'expired':
      return { kind: 'expired', session: wireSession(k.value.session), seq: wireSeq(k.value.seq, 'seq') };
    case 'read':
      return { kind: 'read', id: k.value.id, result: k.value.result };
    case 'wrongGroup': {
      if (k.value.refused === undefined) throw new WireError('WrongGroup without the refused command');
      return {
        kind: 'wrongGroup',
        shard: wireShard(k.value.shard),
        configNum: wireConfigNum(k.value.configNum),
        refused: amoCommandFromWire(k.value.refused),
      };
    }
    default:
      return assertNever(k, 'AmoResult wire kind');
  }
}

/** A peer sent bytes that do not decode to a valid message. */
export class WireError extends Error {
  override readonly name = 'WireError';
}

/**
 * Session ids and seqs above this are refused. No client reaches it (one
 * session per registration, one seq per operation), and the table's
 * arithmetic on them (seq + 1, ackedBelow + window) stays exact.
 */
export const MAX_SEQ = 2 ** 48;

/** `n` as a whole number in [0, max], or a WireError naming `what`. */
export function wireNat(n: number, max: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new WireError(`${what} ${n} is outside [0, ${max}]`);
  return n;
}

// Checked first, so the ids' own assertions cannot fire on input.
const wireSession = (n: number): SessionId => sessionId(wireNat(n, MAX_SEQ, 'session id'));
const wireSeq = (n: number, what: string): Seq => seq(wireNat(n, MAX_SEQ, what));
/** Shard ids are checked against the cluster's shard count by the group that serves them. */
export const wireShard = (n: number): ShardId => shardId(wireNat(n, 2 ** 32 - 1, 'shard'));
export const wireConfigNum = (n: number): ConfigNum => configNum(wireNat(n, Number.MAX_SAFE_INTEGER, 'config number'));

function withoutPayload(c: AmoCommand): AmoCommand {
  return c.kind === 'register' ? c : { ...c, command: new Uint8Array() };
}

/** A client's command with its shard, as clients send it. */
export const shardedCommandCodec: Codec<ShardedCommand> = {
  encode: (c) => wire.AmoCommand.encode(amoCommandToWire(c.command, c.shard)).finish(),
  decode: (b) => {
    const w = wire.AmoCommand.decode(b);
    return { shard: wireShard(w.shard), command: amoCommandFromWire(w) };
  },
};

/** RpcMessage <-> the peer stream's message. */
export function rpcToWire(m: RpcMessage): PeerMessage {
  switch (m.type) {
    case 'ClientCommand':
      return { body: { $case: 'clientCommand', value: amoCommandToWire(m.command, m.shard) } };
    case 'ClientResult':
      return { body: { $case: 'clientResult', value: amoResultToWire(m.result, m.shard) } };
    default:
      return assertNever(m, 'RpcMessage');
  }
}

export function rpcFromWire(w: PeerMessage): RpcMessage {
  const b = w.body;
  if (b === undefined) throw new WireError('PeerMessage without a body');
  switch (b.$case) {
    case 'clientCommand':
      return { type: 'ClientCommand', shard: wireShard(b.value.shard), command: amoCommandFromWire(b.value) };
    case 'clientResult':
      return { type: 'ClientResult', shard: wireShard(b.value.shard), result: amoResultFromWire(b.value) };
    case 'paxos':
      throw new WireError('a Paxos message where a client message was expected');
    case 'host':
      throw new WireError("a group's own message where a client message was expected");
    default:
      return assertNever(b, 'PeerMessage body');
  }
}
