// The one mapping between the KV application's domain types and the generated
// wire types (STYLE.md 5).
//
// Decoding is strict, because a replica must refuse (not guess at) bad bytes,
// and every replica must refuse the same ones: strings must be valid UTF-8
// (the default decoder would substitute U+FFFD, merging distinct keys) and
// no bytes may follow the message. Decoded byte fields alias the input buffer;
// whoever keeps them copies them.
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { assertNever } from '../core/assert.js';
import * as wire from '../gen/shardpax/v1/kv.js';
import { WireError } from '../rpc/codec.js';
import { KvInputError } from './limits.js';
import type { KvCommand, KvErrorCodeName, KvResult } from './messages.js';

export function encodeKvCommand(command: KvCommand): Uint8Array {
  return wire.KvCommand.encode(kvCommandToWire(command)).finish();
}

/** Throws KvInputError (code MALFORMED_COMMAND) if `bytes` is not a KvCommand with a kind. */
export function decodeKvCommand(bytes: Uint8Array): KvCommand {
  const w = decodeStrict(bytes, (r) => wire.KvCommand.decode(r), 'KvCommand', malformedCommand);
  return kvCommandFromWire(w);
}

export function encodeKvResult(result: KvResult): Uint8Array {
  return wire.KvResult.encode(kvResultToWire(result)).finish();
}

/** Throws WireError if `bytes` is not a KvResult with a kind (a server bug or version skew). */
export function decodeKvResult(bytes: Uint8Array): KvResult {
  return kvResultFromWire(decodeStrict(bytes, (r) => wire.KvResult.decode(r), 'KvResult', wireError));
}

/** Entries sorted by key (JavaScript string order), so equal maps encode to equal bytes. */
export function encodeKvSnapshot(entries: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return wire.KvSnapshot.encode({ entries: sorted.map(([key, value]) => ({ key, value })) }).finish();
}

/**
 * Throws WireError unless `bytes` is a snapshot with strictly increasing keys,
 * the only kind encodeKvSnapshot makes. Values alias `bytes`.
 */
export function decodeKvSnapshot(bytes: Uint8Array): Map<string, Uint8Array> {
  const snapshot = decodeStrict(bytes, (r) => wire.KvSnapshot.decode(r), 'KvSnapshot', wireError);
  const entries = new Map<string, Uint8Array>();
  let previous: string | undefined;
  for (const { key, value } of snapshot.entries) {
    if (previous !== undefined && !(previous < key)) {
      throw wireError(`KvSnapshot keys not strictly increasing at ${JSON.stringify(key.slice(0, 64))}`);
    }
    entries.set(key, value);
    previous = key;
  }
  return entries;
}

function kvCommandToWire(command: KvCommand): wire.KvCommand {
  switch (command.kind) {
    case 'get':
      return { kind: { $case: 'get', value: { key: command.key } } };
    case 'put':
      return { kind: { $case: 'put', value: { key: command.key, value: command.value } } };
    case 'delete':
      return { kind: { $case: 'delete', value: { key: command.key } } };
    default:
      return assertNever(command, 'KvCommand');
  }
}

function kvCommandFromWire(w: wire.KvCommand): KvCommand {
  const k = w.kind;
  if (k === undefined) throw malformedCommand('KvCommand without a kind');
  switch (k.$case) {
    case 'get':
      return { kind: 'get', key: k.value.key };
    case 'put':
      return { kind: 'put', key: k.value.key, value: k.value.value };
    case 'delete':
      return { kind: 'delete', key: k.value.key };
    default:
      return assertNever(k, 'KvCommand wire kind');
  }
}

function kvResultToWire(result: KvResult): wire.KvResult {
  switch (result.kind) {
    case 'value': {
      const found = result.value !== undefined;
      return { kind: { $case: 'value', value: { found, value: result.value ?? new Uint8Array() } } };
    }
    case 'done':
      return { kind: { $case: 'done', value: {} } };
    case 'error':
      return { kind: { $case: 'error', value: { code: errorCodeToWire(result.code), message: result.message } } };
    default:
      return assertNever(result, 'KvResult');
  }
}

function kvResultFromWire(w: wire.KvResult): KvResult {
  const k = w.kind;
  if (k === undefined) throw wireError('KvResult without a kind');
  switch (k.$case) {
    case 'value':
      return { kind: 'value', value: valueFromWire(k.value) };
    case 'done':
      return { kind: 'done' };
    case 'error':
      return { kind: 'error', code: errorCodeFromWire(k.value.code), message: k.value.message };
    default:
      return assertNever(k, 'KvResult wire kind');
  }
}

function valueFromWire(w: wire.KvValue): Uint8Array | undefined {
  if (w.found) return w.value;
  // An absent key carrying bytes means the sender is confused; do not guess.
  if (w.value.byteLength > 0) throw wireError('KvValue not found but with a value');
  return undefined;
}

function errorCodeToWire(code: KvErrorCodeName): wire.KvErrorCode {
  switch (code) {
    case 'MALFORMED_COMMAND':
      return wire.KvErrorCode.KV_ERROR_CODE_MALFORMED_COMMAND;
    case 'EMPTY_KEY':
      return wire.KvErrorCode.KV_ERROR_CODE_EMPTY_KEY;
    case 'KEY_TOO_LARGE':
      return wire.KvErrorCode.KV_ERROR_CODE_KEY_TOO_LARGE;
    case 'VALUE_TOO_LARGE':
      return wire.KvErrorCode.KV_ERROR_CODE_VALUE_TOO_LARGE;
    default:
      return assertNever(code, 'KvErrorCodeName');
  }
}

function errorCodeFromWire(code: wire.KvErrorCode): KvErrorCodeName {
  switch (code) {
    case wire.KvErrorCode.KV_ERROR_CODE_MALFORMED_COMMAND:
      return 'MALFORMED_COMMAND';
    case wire.KvErrorCode.KV_ERROR_CODE_EMPTY_KEY:
      return 'EMPTY_KEY';
    case wire.KvErrorCode.KV_ERROR_CODE_KEY_TOO_LARGE:
      return 'KEY_TOO_LARGE';
    case wire.KvErrorCode.KV_ERROR_CODE_VALUE_TOO_LARGE:
      return 'VALUE_TOO_LARGE';
    case wire.KvErrorCode.KV_ERROR_CODE_UNSPECIFIED:
    case wire.KvErrorCode.UNRECOGNIZED:
      throw wireError(`KvError with code ${code}`);
    default: {
      // The decoder passes any int32 through, so this is reachable on bad
      // bytes: a typed error, not an assertion. `never` keeps the switch exhaustive.
      const unknown: never = code;
      throw wireError(`KvError with unknown code ${String(unknown)}`);
    }
  }
}

/** Decodes one whole message; any failure becomes the caller's typed error. */
function decodeStrict<T>(
  bytes: Uint8Array,
  decode: (reader: BinaryReader) => T,
  what: string,
  fail: (why: string) => Error,
): T {
  const reader = new BinaryReader(bytes, decodeUtf8Strictly);
  let message: T;
  try {
    message = decode(reader);
  } catch (e) {
    // Only the generated decoder runs here, so any throw means bad bytes.
    throw fail(`${what} does not decode: ${e instanceof Error ? e.message : String(e)}`);
  }
  // The generated decoder stops early at a zero or end-group tag; what follows is not ours.
  if (reader.pos !== reader.len) throw fail(`${what} has ${reader.len - reader.pos} trailing bytes`);
  return message;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8Strictly(bytes: Uint8Array): string {
  return strictUtf8.decode(bytes);
}

function malformedCommand(why: string): KvInputError {
  return new KvInputError({ code: 'MALFORMED_COMMAND', message: why });
}

function wireError(why: string): WireError {
  return new WireError(why);
}
