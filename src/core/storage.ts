// The storage port (STYLE.md 4). Keys live in named spaces (LevelDB sublevels
// in the real adapter) so acceptor state, the log, applied state and metadata
// never collide. Adapters: src/sim/memory-storage.ts, src/server/level-storage.ts;
// both pass test/storage-contract.ts.

import { assert } from './assert.js';

export type StorageWrite =
  | { readonly op: 'put'; readonly space: string; readonly key: string; readonly value: Uint8Array }
  | { readonly op: 'del'; readonly space: string; readonly key: string };

/** Everything a node's storage holds, read once at (re)start: space -> key -> value, keys in ascending order. */
export type StoredState = ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>;

export interface Storage {
  /** Reads everything stored; a space with no keys is absent (read through `space()`). */
  load(): Promise<StoredState>;
  /**
   * Applies all writes atomically. With `sync`, they (and every earlier
   * write) survive a crash once the promise resolves; without it, a crash
   * may lose them.
   */
  write(writes: readonly StorageWrite[], options: { readonly sync: boolean }): Promise<void>;
  close(): Promise<void>;
}

// Rules every adapter enforces the same way (test/storage-contract.ts).
/** Space names become LevelDB sublevel names: ASCII that sorts after the '!' separator. */
const SPACE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** With the `u` flag only a lone surrogate matches: UTF-8, LevelDB's key encoding, cannot hold one. */
const LONE_SURROGATE = /\p{Cs}/u;

export function checkSpaceNames(names: readonly string[]): void {
  for (const name of names) assert(SPACE_NAME.test(name), `bad storage space name ${JSON.stringify(name)}`);
  assert(new Set(names).size === names.length, `duplicate storage space in [${names.join(', ')}]`);
}

export function checkKey(key: string): void {
  assert(!LONE_SURROGATE.test(key), `storage key ${JSON.stringify(key)} is not valid UTF-16`);
}

export function unknownSpaceError(name: string, opened: Iterable<string>): Error {
  return new Error(`unknown storage space ${JSON.stringify(name)} (opened with: ${[...opened].join(', ')})`);
}

export function put(space: string, key: string, value: Uint8Array): StorageWrite {
  return { op: 'put', space, key, value };
}

export function del(space: string, key: string): StorageWrite {
  return { op: 'del', space, key };
}

/** Fixed-width key for a non-negative integer, so that byte order is numeric order. */
export function indexKey(n: number): string {
  return n.toString(16).padStart(14, '0');
}

export function emptyState(): StoredState {
  return new Map();
}

export function space(state: StoredState, name: string): ReadonlyMap<string, Uint8Array> {
  return state.get(name) ?? new Map();
}
