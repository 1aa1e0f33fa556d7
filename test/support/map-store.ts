// An in-memory StateStore for unit tests of applications (src/core/application.ts):
// a Map with the storage port's no-aliasing rule (values are copied on the way
// in and on the way out, as MemoryStorage and LevelStorage do), plus what
// tests need to look inside: ordered entries, a write count, copies.
import type { StateStore } from '../../src/core/application.js';
import type { AmoStores } from '../../src/rpc/amo-application.js';
import { compareCodePoints } from '../../src/sim/memory-storage.js';

export class MapStore implements StateStore {
  private readonly data = new Map<string, Uint8Array>();
  /** Calls of put and del so far (a read-only caller must leave this at 0). */
  writes = 0;

  constructor(entries: Iterable<readonly [string, Uint8Array]> = []) {
    for (const [key, value] of entries) this.data.set(key, value.slice());
  }

  get(key: string): Uint8Array | undefined {
    return this.data.get(key)?.slice();
  }

  put(key: string, value: Uint8Array): void {
    this.writes += 1;
    this.data.set(key, value.slice());
  }

  del(key: string): void {
    this.writes += 1;
    this.data.delete(key);
  }

  get size(): number {
    return this.data.size;
  }

  /** Keys in storage order (UTF-8 byte order, as LevelDB returns them). */
  keys(): string[] {
    return [...this.data.keys()].sort(compareCodePoints);
  }

  /** Entries in storage order; values are copies. */
  entries(): Array<[string, Uint8Array]> {
    return this.keys().map((k) => [k, this.get(k) ?? new Uint8Array()]);
  }

  /** The whole content as plain arrays, for exact comparisons (order included). */
  dump(): Array<[string, number[]]> {
    return this.entries().map(([k, v]) => [k, [...v]]);
  }

  /** An independent copy (what a state transfer would install elsewhere). */
  clone(): MapStore {
    return new MapStore(this.data);
  }
}

/** The three stores of the at-most-once wrapper, each a MapStore. */
export interface MapStores extends AmoStores {
  readonly sessions: MapStore;
  readonly results: MapStore;
  readonly app: MapStore;
}

export function mapStores(): MapStores {
  return { sessions: new MapStore(), results: new MapStore(), app: new MapStore() };
}

export function cloneStores(s: MapStores): MapStores {
  return { sessions: s.sessions.clone(), results: s.results.clone(), app: s.app.clone() };
}
