// A replicated application (DESIGN.md 2.2, 3): a pure, deterministic state
// machine whose state lives on disk. Replicas apply the same commands in the
// same order and so hold the same state. An application reads and writes its
// state only through the store it is handed, which the host backs with
// synchronous reads over the ready batch's overlay (src/core/env.ts).

/** Reads of an application's own keys. */
export interface StateReader {
  get(key: string): Uint8Array | undefined;
}

/** Reads and writes of an application's own keys; writes land in the step's ready batch. */
export interface StateStore extends StateReader {
  put(key: string, value: Uint8Array): void;
  del(key: string): void;
}

export interface Application {
  /** Applies one command; returns its result. Never throws on any input bytes. */
  apply(command: Uint8Array, store: StateStore): Uint8Array;
  /** Answers a command that may only read (it has no place in the exactly-once table); refuses any other. */
  query(command: Uint8Array, store: StateReader): Uint8Array;
}

/** Byte encoding of one domain type, used for logs and the wire. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}
