// The simulated disk (DESIGN.md §1): an in-memory Storage with LevelDB's
// durability rules, so the simulator can crash a node and check that it only
// relied on what it had synced (FoundationDB's simulated disk does the same).
//
// Invariants:
// - A write call is atomic: after a crash all of it is there or none of it.
// - A write with `sync: true` makes itself and every earlier write durable;
//   writes without sync are visible to loadSync() until crash() drops them.
// - No aliasing: values are copied on the way in and on the way out.
// - Same observable behaviour as LevelStorage (test/storage-contract.ts):
//   load() returns the spaces that hold keys (an empty space is absent; read
//   through `space()` from core/storage), spaces by name and keys in UTF-8
//   byte order (= code point order, LevelDB's order). Given a list of spaces,
//   a write to any other space is an Error, as in LevelStorage; without one,
//   any space is created on first write (the generic simulator's use).
import { assert } from '../core/assert.js';
import {
  checkKey,
  checkSpaceNames,
  type Storage,
  type StorageWrite,
  type StoredState,
  unknownSpaceError,
} from '../core/storage.js';

type Space = Map<string, Uint8Array>;


export class MemoryStorage implements Storage {
  /** The spaces writes may name; undefined accepts any valid name. */
  private readonly spaces: ReadonlySet<string> | undefined;
  /** What survives crash(). Values held here are private copies, never handed out. */
  private readonly durable = new Map<string, Space>();
  /** Write calls since the last sync, oldest first; lost by crash(). */
  private unsynced: StorageWrite[][] = [];
  private closed = false;

  constructor(spaces?: readonly string[]) {
    if (spaces !== undefined) {
      checkSpaceNames(spaces);
      this.spaces = new Set(spaces);
    } else {
      this.spaces = undefined;
    }
  }

  /** What a restarted node reads: durable writes plus unsynced ones not yet lost to a crash. */
  loadSync(): StoredState {
    assert(!this.closed, 'MemoryStorage.loadSync on a closed storage');
    let current: Map<string, Space> = this.durable;
    if (this.unsynced.length > 0) {
      current = new Map();
      for (const [name, space] of this.durable) current.set(name, new Map(space));
      for (const batch of this.unsynced) applyBatch(current, batch);
    }

    const state = new Map<string, Map<string, Uint8Array>>();
    for (const name of [...current.keys()].sort(compareCodePoints)) {
      const space = current.get(name);
      assert(space !== undefined);
      if (space.size === 0) continue;
      const sorted = new Map<string, Uint8Array>();
      for (const key of [...space.keys()].sort(compareCodePoints)) {
        const value = space.get(key);
        assert(value !== undefined);
        sorted.set(key, value.slice());
      }
      state.set(name, sorted);
    }
    return state;
  }

  writeSync(writes: readonly StorageWrite[], options: { readonly sync: boolean }): void {
    assert(!this.closed, 'MemoryStorage.writeSync on a closed storage');
    this.check(writes);
    const batch = writes.map(copyWrite);
    if (batch.length > 0) this.unsynced.push(batch);
    if (options.sync) {
      for (const pending of this.unsynced) applyBatch(this.durable, pending);
      this.unsynced = [];
    }
  }

  /** Power loss: every write not yet made durable by a synced write is gone. */
  crash(): void {
    this.unsynced = [];
  }

  /** Number of write calls a crash() would lose now (for simulator metrics and tests). */
  get unsyncedWrites(): number {
    return this.unsynced.length;
  }

  // The async Storage port, for the contract tests and any async host.

  load(): Promise<StoredState> {
    return settle(() => {
      this.checkOpen();
      return this.loadSync();
    });
  }

  write(writes: readonly StorageWrite[], options: { readonly sync: boolean }): Promise<void> {
    return settle(() => {
      this.checkOpen();
      this.writeSync(writes, options);
    });
  }

  /** Idempotent. Like closing LevelDB cleanly, keeps unsynced writes (only crash() loses them). */
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** Opens a closed storage again over the same simulated disk (the in-memory `LevelStorage.open`). */
  reopen(): this {
    if (!this.closed) throw new Error('MemoryStorage.reopen: storage is still open');
    this.closed = false;
    return this;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('MemoryStorage: storage is closed');
  }

  /** Rejects the whole call before any of it is applied, so a bad write changes nothing. */
  private check(writes: readonly StorageWrite[]): void {
    for (const w of writes) {
      if (this.spaces === undefined) checkSpaceNames([w.space]);
      else if (!this.spaces.has(w.space)) throw unknownSpaceError(w.space, this.spaces);
      checkKey(w.key);
    }
  }
}

/** Runs `f` now; its result or throw becomes the promise's value or rejection. */
function settle<T>(f: () => T): Promise<T> {
  return new Promise((resolve) => resolve(f()));
}

function copyWrite(w: StorageWrite): StorageWrite {
  return w.op === 'put' ? { op: 'put', space: w.space, key: w.key, value: w.value.slice() } : w;
}

function applyBatch(spaces: Map<string, Space>, batch: readonly StorageWrite[]): void {
  for (const w of batch) {
    let space = spaces.get(w.space);
    if (space === undefined) {
      space = new Map();
      spaces.set(w.space, space);
    }
    if (w.op === 'put') space.set(w.key, w.value);
    else space.delete(w.key);
  }
}

/**
 * Orders strings by code point, which is the byte order of their UTF-8
 * encoding and so LevelDB's key order. Plain `<` compares UTF-16 code units
 * and puts U+10000.. (surrogate pairs, 0xD800..) before U+E000..U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return fixup(x) - fixup(y);
  }
  return a.length - b.length;
}

/** Moves surrogates (0xD800..0xDFFF) above 0xE000..0xFFFF, preserving order within each range. */
function fixup(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}
