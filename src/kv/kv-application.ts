// The replicated key-value application of one replica group (DESIGN.md 2.2,
// 2.4): get, put and delete on string keys and byte values. It runs inside
// the exactly-once wrapper (src/rpc/amo-application.ts) on every replica, so
// commands and results cross it as protobuf bytes (src/kv/codec.ts).
//
// Determinism: every replica applies the same commands in the same order and
// must reach the same state and answer the same results. So `apply` is a pure
// function of (state, command): no clock, no randomness, no iteration-order
// dependence (snapshots sort their keys).
//
// Invariants:
// - every stored key and value is within the limits of src/kv/limits.ts;
// - a refused command (bad bytes, a broken limit) changes nothing;
// - stored values are owned: never aliases of a command or snapshot buffer;
// - `apply` never throws on any input bytes; only a bug throws.
import type { Application } from '../core/application.js';
import { assert, assertNever } from '../core/assert.js';
import { WireError } from '../rpc/codec.js';
import { decodeKvCommand, decodeKvSnapshot, encodeKvResult, encodeKvSnapshot } from './codec.js';
import { KvInputError, validateCommand, validateKey, validateValue } from './limits.js';
import type { KvCommand, KvResult } from './messages.js';

export class KvApplication implements Application<Uint8Array, Uint8Array> {
  private entries = new Map<string, Uint8Array>();

  apply(command: Uint8Array): Uint8Array {
    return encodeKvResult(this.execute(command));
  }

  snapshot(): Uint8Array {
    return encodeKvSnapshot(this.entries);
  }

  /** Replaces the whole state; on a bad snapshot it throws and keeps the old state. */
  restore(snapshot: Uint8Array): void {
    const restored = new Map<string, Uint8Array>();
    for (const [key, value] of decodeKvSnapshot(snapshot)) {
      // Bad snapshot bytes are bad input (corruption, a foreign snapshot), not a bug here.
      const violation = validateKey(key) ?? validateValue(value);
      if (violation !== undefined) throw new WireError(`KvSnapshot entry refused: ${violation.message}`);
      restored.set(key, value.slice()); // values are views into `snapshot`
    }
    this.entries = restored;
  }

  /** Number of keys stored. */
  size(): number {
    return this.entries.size;
  }

  /** A copy of the value stored under `key`, for tests and inspection. */
  get(key: string): Uint8Array | undefined {
    return this.entries.get(key)?.slice();
  }

  /** Called by the simulator after every step (STYLE.md 6). */
  checkInvariants(): void {
    for (const [key, value] of this.entries) {
      assert(validateKey(key) === undefined, `stored key breaks a limit: ${JSON.stringify(key.slice(0, 64))}`);
      assert(validateValue(value) === undefined, `stored value breaks a limit under ${JSON.stringify(key.slice(0, 64))}`);
    }
  }

  /** Decode, check, apply: bad input becomes an error result, never a throw. */
  private execute(bytes: Uint8Array): KvResult {
    let command: KvCommand;
    try {
      command = decodeKvCommand(bytes);
    } catch (e) {
      if (e instanceof KvInputError) return { kind: 'error', code: e.code, message: e.message };
      throw e; // anything else is a bug in this code, not in the input
    }
    const violation = validateCommand(command);
    if (violation !== undefined) return { kind: 'error', code: violation.code, message: violation.message };
    return this.applyValid(command);
  }

  private applyValid(command: KvCommand): KvResult {
    switch (command.kind) {
      case 'get':
        return { kind: 'value', value: this.entries.get(command.key) };
      case 'put':
        // The decoded value is a view into the command buffer, which the log
        // or transport may reuse: keep a copy of our own.
        this.entries.set(command.key, command.value.slice());
        return { kind: 'done' };
      case 'delete':
        this.entries.delete(command.key);
        return { kind: 'done' };
      default:
        return assertNever(command, 'KvCommand');
    }
  }
}
