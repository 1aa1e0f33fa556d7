// A replicated application (DESIGN.md 2.2): a pure, deterministic state
// machine. Replicas apply the same commands in the same order and so hold the
// same state; snapshots let the log behind them be dropped.

export interface Application<C, R> {
  apply(command: C): R;
  snapshot(): Uint8Array;
  restore(snapshot: Uint8Array): void;
}

/** Byte encoding of one domain type, used for logs, snapshots and the wire. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}
