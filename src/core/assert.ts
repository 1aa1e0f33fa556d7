// Invariant checks in the spirit of TigerBeetle: an assertion that fails means
// the program is wrong, never that the input was bad (bad input gets a typed
// error). They stay on in production.

export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Ends every exhaustive `switch` over a discriminated union. */
export function assertNever(value: never, what = 'value'): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}
