// Limits on keys and values (DESIGN.md 2.4), checked on both sides of the
// wire: the client SDK checks before sending so a bad call fails fast with a
// clear error, and the application checks again because replicas must not
// trust clients. Both sides use these functions, so they cannot disagree.
//
// Checks are pure functions of the command, so every replica refuses exactly
// the same commands.
import { assertNever } from '../core/assert.js';
import type { KvCommand, KvErrorCodeName } from './messages.js';

/** Longest key, in bytes of its UTF-8 encoding (what the wire and storage carry). */
export const MAX_KEY_BYTES = 1024;
/** Longest value, in bytes. */
export const MAX_VALUE_BYTES = 1 << 20;

/** Why an input is refused, as data: the application turns it into an error result. */
export interface KvViolation {
  readonly code: KvErrorCodeName;
  readonly message: string;
}

/** A refused input, as an exception: what the client SDK throws. */
export class KvInputError extends Error {
  // Widened to string so the SDK's InvalidArgumentError, a KvInputError, can carry its own name.
  override readonly name: string = 'KvInputError';
  readonly code: KvErrorCodeName;
  /** A refused command changed nothing (the SDK's errors all say whether it might have). */
  readonly mayHaveTakenEffect = false;

  constructor(violation: KvViolation) {
    super(violation.message);
    this.code = violation.code;
  }
}

export function validateKey(key: string): KvViolation | undefined {
  if (key.length === 0) return { code: 'EMPTY_KEY', message: 'key is empty' };
  const bytes = utf8Length(key);
  if (bytes === undefined) {
    // TextEncoder would silently turn a lone surrogate into U+FFFD, so two
    // different keys would reach the server as the same one.
    return { code: 'MALFORMED_COMMAND', message: 'key holds a lone surrogate, so it has no UTF-8 encoding' };
  }
  if (bytes > MAX_KEY_BYTES) {
    return { code: 'KEY_TOO_LARGE', message: `key is ${bytes} bytes; the limit is ${MAX_KEY_BYTES}` };
  }
  return undefined;
}

export function validateValue(value: Uint8Array): KvViolation | undefined {
  if (value.byteLength > MAX_VALUE_BYTES) {
    return {
      code: 'VALUE_TOO_LARGE',
      message: `value is ${value.byteLength} bytes; the limit is ${MAX_VALUE_BYTES}`,
    };
  }
  return undefined;
}

/** The first limit `command` breaks, key before value; undefined if none. */
export function validateCommand(command: KvCommand): KvViolation | undefined {
  switch (command.kind) {
    case 'get':
    case 'delete':
      return validateKey(command.key);
    case 'put':
      return validateKey(command.key) ?? validateValue(command.value);
    default:
      return assertNever(command, 'KvCommand');
  }
}

/** Throws KvInputError if `command` breaks a limit: the client's fail-fast check. */
export function checkCommand(command: KvCommand): void {
  const violation = validateCommand(command);
  if (violation !== undefined) throw new KvInputError(violation);
}

/**
 * Bytes in the UTF-8 encoding of `s`, counted without encoding it; undefined
 * if `s` holds a lone surrogate (it is not well-formed UTF-16).
 */
export function utf8Length(s: string): number | undefined {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit < 0xd800 || unit > 0xdfff) bytes += 3;
    else if (unit <= 0xdbff && isLowSurrogate(s.charCodeAt(i + 1))) {
      bytes += 4; // a surrogate pair is one code point above U+FFFF
      i += 1;
    } else return undefined;
  }
  return bytes;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff; // false for NaN, past the end
}
