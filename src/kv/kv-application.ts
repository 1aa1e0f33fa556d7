// The replicated key-value application of one replica group (DESIGN.md 2.2,
// 2.4): get, put and delete on string keys and byte values, kept on disk
// (DESIGN.md 3) under the keys of the store it is handed. It runs inside the
// exactly-once wrapper (src/rpc/amo-application.ts) on every replica, so
// commands and results cross it as protobuf bytes (src/kv/codec.ts).
//
// Determinism: every replica applies the same commands in the same order and
// must reach the same state and answer the same results. So `apply` is a pure
// function of (stored state, command): no clock, no randomness.
//
// Invariants:
// - every stored key and value is within the limits of src/kv/limits.ts;
// - a refused command (bad bytes, a broken limit) changes nothing;
// - `apply` and `query` never throw on any input bytes; only a bug throws.
import type { Application, StateReader, StateStore } from '../core/application.js';
import { assertNever } from '../core/assert.js';
import { decodeKvCommand, encodeKvResult } from './codec.js';
import { KvInputError, validateCommand } from './limits.js';
import type { KvCommand, KvResult } from './messages.js';

export class KvApplication implements Application {
  apply(command: Uint8Array, store: StateStore): Uint8Array {
    const c = checked(command);
    if (c.kind === 'error') return encodeKvResult(c);
    switch (c.kind) {
      case 'get':
        return encodeKvResult({ kind: 'value', value: store.get(c.key) });
      case 'put':
        store.put(c.key, c.value);
        return encodeKvResult({ kind: 'done' });
      case 'delete':
        store.del(c.key);
        return encodeKvResult({ kind: 'done' });
      default:
        return assertNever(c, 'KvCommand');
    }
  }

  query(command: Uint8Array, store: StateReader): Uint8Array {
    const c = checked(command);
    if (c.kind === 'error') return encodeKvResult(c);
    if (c.kind !== 'get') return encodeKvResult({ kind: 'error', code: 'MALFORMED_COMMAND', message: `a ${c.kind} is not a read` });
    return encodeKvResult({ kind: 'value', value: store.get(c.key) });
  }
}

/** Decodes and checks: bad input becomes an error result, never a throw. */
function checked(bytes: Uint8Array): KvCommand | Extract<KvResult, { kind: 'error' }> {
  let command: KvCommand;
  try {
    command = decodeKvCommand(bytes);
  } catch (e) {
    if (e instanceof KvInputError) return { kind: 'error', code: e.code, message: e.message };
    throw e; // anything else is a bug in this code, not in the input
  }
  const violation = validateCommand(command);
  if (violation !== undefined) return { kind: 'error', code: violation.code, message: violation.message };
  return command;
}
