// The one mapping between this layer's domain types and the generated wire
// types (STYLE.md 5).
import { assertNever } from '../core/assert.js';
import type { Codec } from '../core/application.js';
import { seq, sessionId } from '../core/ids.js';
import type { PeerMessage } from '../gen/shardpax/v1/peer.js';
import * as wire from '../gen/shardpax/v1/session.js';
import type { AmoCommand, AmoResult, RpcMessage } from './messages.js';

export function amoCommandToWire(c: AmoCommand): wire.AmoCommand {
  switch (c.kind) {
    case 'register':
      return { kind: { $case: 'register', value: { nonce: c.nonce } } };
    case 'request':
      return {
        kind: {
          $case: 'request',
          value: { session: c.session, seq: c.seq, ackedBelow: c.ackedBelow, command: c.command },
        },
      };
    case 'read':
      return { kind: { $case: 'read', value: { id: c.id, command: c.command } } };
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
        session: sessionId(k.value.session),
        seq: seq(k.value.seq),
        ackedBelow: seq(k.value.ackedBelow),
        command: k.value.command,
      };
    case 'read':
      return { kind: 'read', id: k.value.id, command: k.value.command };
    default:
      return assertNever(k, 'AmoCommand wire kind');
  }
}

export function amoResultToWire(r: AmoResult): wire.AmoResult {
  switch (r.kind) {
    case 'registered':
      return { kind: { $case: 'registered', value: { nonce: r.nonce, session: r.session } } };
    case 'result':
      return { kind: { $case: 'result', value: { session: r.session, seq: r.seq, result: r.result } } };
    case 'expired':
      return { kind: { $case: 'expired', value: { session: r.session, seq: r.seq } } };
    case 'read':
      return { kind: { $case: 'read', value: { id: r.id, result: r.result } } };
    default:
      return assertNever(r, 'AmoResult');
  }
}

export function amoResultFromWire(w: wire.AmoResult): AmoResult {
  const k = w.kind;
  if (k === undefined) throw new WireError('AmoResult without a kind');
  switch (k.$case) {
    case 'registered':
      return { kind: 'registered', nonce: k.value.nonce, session: sessionId(k.value.session) };
    case 'result':
      return { kind: 'result', session: sessionId(k.value.session), seq: seq(k.value.seq), result: k.value.result };
    case 'expired':
      return { kind: 'expired', session: sessionId(k.value.session), seq: seq(k.value.seq) };
    case 'read':
      return { kind: 'read', id: k.value.id, result: k.value.result };
    default:
      return assertNever(k, 'AmoResult wire kind');
  }
}

/** A peer sent bytes that do not decode to a valid message. */
export class WireError extends Error {
  override readonly name = 'WireError';
}

export const amoCommandCodec: Codec<AmoCommand> = {
  encode: (c) => wire.AmoCommand.encode(amoCommandToWire(c)).finish(),
  decode: (b) => amoCommandFromWire(wire.AmoCommand.decode(b)),
};

/** RpcMessage <-> the peer stream's message. */
export function rpcToWire(m: RpcMessage): PeerMessage {
  switch (m.type) {
    case 'ClientCommand':
      return { body: { $case: 'clientCommand', value: amoCommandToWire(m.command) } };
    case 'ClientResult':
      return { body: { $case: 'clientResult', value: amoResultToWire(m.result) } };
    default:
      return assertNever(m, 'RpcMessage');
  }
}

export function rpcFromWire(w: PeerMessage): RpcMessage {
  const b = w.body;
  if (b === undefined) throw new WireError('PeerMessage without a body');
  switch (b.$case) {
    case 'clientCommand':
      return { type: 'ClientCommand', command: amoCommandFromWire(b.value) };
    case 'clientResult':
      return { type: 'ClientResult', result: amoResultFromWire(b.value) };
    case 'paxos':
      throw new WireError('a Paxos message where a client message was expected');
    default:
      return assertNever(b, 'PeerMessage body');
  }
}
