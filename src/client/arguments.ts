// Run-time checks of what callers hand the SDK. The compiler checks
// TypeScript callers, but plain JavaScript (or a cast) can pass anything:
// unchecked, put(123, 'v') stored the key "123", put(k, 123) failed deep in
// the encoder with "invalid uint32", and a typo in an option was ignored.
// Each check either returns the argument as its declared type, unchanged, or
// throws an InvalidArgumentError naming it; nothing is coerced.
import { addressProblem } from '../runtime/address.js';
import { CLUSTER_ID } from '../runtime/cluster-config.js';
import type { ConnectOptions } from './group-client.js';
import { InvalidArgumentError } from './errors.js';

const LONE_SURROGATE = /\p{Surrogate}/u;
/** setTimeout fires at once for a delay past this, so a longer timeout would expire immediately. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function checkKey(call: string, key: unknown): string {
  if (typeof key !== 'string') throw new InvalidArgumentError(call, 'key', 'a string', describeValue(key));
  return key;
}

/** The value's bytes: a Uint8Array (a Buffer is one) as it is, a string as UTF-8. */
export function checkValue(call: string, value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value !== 'string') throw new InvalidArgumentError(call, 'value', 'a string or a Uint8Array', describeValue(value));
  // TextEncoder would write a lone surrogate as U+FFFD: the stored bytes would not be the string given.
  // (With the u flag a surrogate pair is one code point, so only a lone surrogate matches.)
  if (LONE_SURROGATE.test(value)) {
    throw new InvalidArgumentError(call, 'value', 'a string or a Uint8Array', 'a string with a lone surrogate, which has no UTF-8 encoding');
  }
  return new TextEncoder().encode(value);
}

type OptionCheck = (value: unknown, argument: string) => void;

// One check per option; the mapped type makes a new option without a check a compile error.
const OPTION_CHECKS: { readonly [K in keyof ConnectOptions]-?: OptionCheck } = {
  cluster: (v, argument) => {
    if (typeof v !== 'string' || v === '') throw new InvalidArgumentError('connect', argument, 'the path of a cluster file', describeValue(v));
  },
  endpoints: checkEndpoints,
  clusterId: (v, argument) => {
    if (typeof v !== 'string' || !CLUSTER_ID.test(v)) {
      throw new InvalidArgumentError('connect', argument, "a cluster id (1-64 letters, digits or '-')", describeValue(v));
    }
  },
  timeoutMs: checkMillis,
  connectTimeoutMs: checkMillis,
  window: (v, argument) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new InvalidArgumentError('connect', argument, 'a whole number of at least 1', describeValue(v));
  },
};

export function checkConnectOptions(options: unknown): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidArgumentError('connect', 'options', "an object such as { cluster: 'data/cluster.json' }", describeValue(options));
  }
  const given = options as Record<string, unknown>;
  for (const [name, value] of Object.entries(given)) {
    if (value === undefined) continue; // an option left out
    const check = Object.hasOwn(OPTION_CHECKS, name) ? OPTION_CHECKS[name as keyof ConnectOptions] : undefined;
    if (check === undefined) {
      const known = Object.keys(OPTION_CHECKS).join(', ');
      throw new InvalidArgumentError('connect', `options.${name}`, `left out: it is not an option (the options are ${known})`, describeValue(value));
    }
    check(value, `options.${name}`);
  }
  if (given.cluster !== undefined && given.endpoints !== undefined) {
    throw new InvalidArgumentError('connect', 'options', 'an object with cluster or endpoints, not both', 'an object with both');
  }
}

function checkMillis(v: unknown, argument: string): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_TIMER_MS) {
    throw new InvalidArgumentError('connect', argument, `a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`, describeValue(v));
  }
}

function checkEndpoints(v: unknown, argument: string): void {
  if (!Array.isArray(v) || v.length === 0) {
    throw new InvalidArgumentError('connect', argument, "a non-empty array of 'host:port' strings", describeValue(v));
  }
  v.forEach((address: unknown, i) => {
    const at = `${argument}[${i}]`;
    if (typeof address !== 'string') throw new InvalidArgumentError('connect', at, "a 'host:port' string", describeValue(address));
    const problem = addressProblem(address);
    if (problem !== undefined) throw new InvalidArgumentError('connect', at, "a 'host:port' string", `${describeValue(address)}: ${problem}`);
  });
}

/** What a caller passed, in a few words: its type and, for a primitive, its value. */
function describeValue(v: unknown): string {
  switch (typeof v) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return `string ${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)}`;
    case 'number':
    case 'boolean':
    case 'bigint':
      return `${typeof v} ${String(v)}`;
    case 'symbol':
      return `symbol ${v.toString()}`;
    case 'function':
      return 'a function';
    case 'object':
      return describeObject(v);
  }
}

function describeObject(v: object | null): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) return 'an object';
  const name = typeof v.constructor === 'function' && v.constructor.name !== '' ? v.constructor.name : 'object';
  const what = `${/^[AEIO]/i.test(name) ? 'an' : 'a'} ${name}`; // "an Int8Array", "a Uint8Array"
  return v instanceof Promise ? `${what} (a missing await?)` : what;
}
