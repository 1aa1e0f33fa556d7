// The simulated disk (DESIGN.md §1): an in-memory Storage with LevelDB's
// durability rules, so the simulator can crash a node and check that it only
// relied on what it had synced (FoundationDB's simulated disk does the same).
//
// Invariants:
// - A write call's puts and deletes are atomic: after a crash all of them are
//   there or none (a `clear` or `snapshot` op splits a call, as in LevelStorage).
// - A write with `sync: true` makes itself and every earlier write durable;
//   writes without sync are visible until crash() drops them, and a crash
//   drops a suffix of the writes, never a write with a later one kept.
// - Snapshots are volatile: crash() forgets them.
// - No aliasing: values are copied on the way in and on the way out.
// - Same observable behaviour as LevelStorage (test/storage-contract.ts):
//   spaces by name, keys in UTF-8 byte order (= code point order, LevelDB's
//   order). Given a list of spaces, a write to any other space is an Error,
//   as in LevelStorage; without one, any space is created on first write (the
//   generic simulator's use).
import { assert } from '../core/assert.js';
import {
  checkSpaceNames,
  checkWriteKeys,
  copyWrite,
  entryBytes,
  splitSteps,
  type ScanRequest,
  type ScanResult,
  type Storage,
  type StorageWrite,
  type StoredState,
  unknownSpaceError,
} from '../core/storage.js';

type Space = Map<string, Uint8Array>;
type Spaces = Map<string, Space>;

export class MemoryStorage implements Storage {
  /** The spaces writes may name; undefined accepts any valid name. */
  private readonly spaces: ReadonlySet<string> | undefined;
  /** What survives crash(). Values held here are private copies, never handed out. */
  private durable: Spaces = new Map();
  /** What reads see: durable plus every unsynced write. */
  private visible: Spaces = new Map();
  /** Write steps since the last sync, oldest first; lost by crash(). */
  private unsynced: StorageWrite[][] = [];
  private readonly snapshots = new Map<number, Spaces>();
  private closed = false;

  constructor(spaces?: readonly string[]) {
    if (spaces !== undefined) {
      checkSpaceNames(spaces);
      this.spaces = new Set(spaces);
    } else {
      this.spaces = undefined;
    }
  }

  getSync(space: string, key: string): Uint8Array | undefined {
    this.checkOpen();
    this.checkSpace(space);
    return this.visible.get(space)?.get(key)?.slice();
  }

  /** The named spaces as a restarted node reads them. */
  loadSpacesSync(names: readonly string[]): StoredState {
    this.checkOpen();
    const state = new Map<string, Map<string, Uint8Array>>();
    for (const name of [...names].sort(compareCodePoints)) {
      this.checkSpace(name);
      const space = this.visible.get(name);
      if (space === undefined || space.size === 0) continue;
      const sorted = new Map<string, Uint8Array>();
      for (const key of [...space.keys()].sort(compareCodePoints)) sorted.set(key, copyOf(space.get(key)));
      state.set(name, sorted);
    }
    return state;
  }

  scanSync(request: ScanRequest): ScanResult | undefined {
    this.checkOpen();
    this.checkSpace(request.space);
    const snap = this.snapshots.get(request.snapshot);
    if (snap === undefined) return undefined;
    const space = snap.get(request.space) ?? new Map<string, Uint8Array>();
    const keys = [...space.keys()]
      .filter((k) => compareCodePoints(k, request.gte) >= 0 && (request.lt === undefined || compareCodePoints(k, request.lt) < 0))
      .sort(compareCodePoints);
    const entries: Array<readonly [string, Uint8Array]> = [];
    let bytes = 0;
    for (const key of keys) {
      if (entries.length > 0 && bytes >= request.maxBytes) return { entries, next: key };
      const value = copyOf(space.get(key));
      entries.push([key, value]);
      bytes += entryBytes(key, value);
    }
    return { entries, next: undefined };
  }

  writeSync(writes: readonly StorageWrite[], options: { readonly sync: boolean }): void {
    this.checkOpen();
    this.check(writes);
    const steps = splitSteps(writes.map(copyWrite));
    for (const step of steps) {
      const first = step[0];
      if (first?.op === 'snapshot') {
        this.snapshots.set(first.id, cloneSpaces(this.visible));
        continue;
      }
      applyStep(this.visible, step);
      this.unsynced.push(step);
    }
    if (options.sync) {
      for (const step of this.unsynced) applyStep(this.durable, step);
      this.unsynced = [];
    }
  }

  /** Power loss: every write not yet made durable by a synced write is gone, and so are snapshots. */
  crash(): void {
    this.unsynced = [];
    this.visible = cloneSpaces(this.durable);
    this.snapshots.clear();
  }

  /** Disk loss: nothing is left. */
  wipe(): void {
    this.durable = new Map();
    this.crash();
  }

  /** Number of write steps a crash() would lose now (for simulator metrics and tests). */
  get unsyncedWrites(): number {
    return this.unsynced.length;
  }

  // The async Storage port, for the contract tests and any async host.

  loadSpaces(names: readonly string[]): Promise<StoredState> {
    return settle(() => this.loadSpacesSync(names));
  }

  scan(request: ScanRequest): Promise<ScanResult> {
    return settle(() => {
      const r = this.scanSync(request);
      if (r === undefined) throw new Error(`unknown snapshot ${request.snapshot}`);
      return r;
    });
  }

  releaseSnapshot(id: number): void {
    this.snapshots.delete(id);
  }

  write(writes: readonly StorageWrite[], options: { readonly sync: boolean }): Promise<void> {
    return settle(() => this.writeSync(writes, options));
  }

  /** Idempotent. Like closing LevelDB cleanly, keeps unsynced writes (only crash() loses them). */
  close(): Promise<void> {
    this.closed = true;
    this.snapshots.clear();
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

  private checkSpace(name: string): void {
    if (this.spaces === undefined) checkSpaceNames([name]);
    else if (!this.spaces.has(name)) throw unknownSpaceError(name, this.spaces);
  }

  /** Rejects the whole call before any of it is applied, so a bad write changes nothing. */
  private check(writes: readonly StorageWrite[]): void {
    for (const w of writes) {
      if (w.op !== 'snapshot') this.checkSpace(w.space);
      checkWriteKeys(w);
    }
  }
}

/** Runs `f` now; its result or throw becomes the promise's value or rejection. */
function settle<T>(f: () => T): Promise<T> {
  return new Promise((resolve) => resolve(f()));
}

function copyOf(value: Uint8Array | undefined): Uint8Array {
  assert(value !== undefined);
  return value.slice();
}

function cloneSpaces(spaces: Spaces): Spaces {
  const copy: Spaces = new Map();
  for (const [name, space] of spaces) copy.set(name, new Map(space));
  return copy;
}

function applyStep(spaces: Spaces, step: readonly StorageWrite[]): void {
  for (const w of step) {
    if (w.op === 'snapshot') continue;
    let space = spaces.get(w.space);
    if (space === undefined) {
      space = new Map();
      spaces.set(w.space, space);
    }
    if (w.op === 'put') space.set(w.key, w.value);
    else if (w.op === 'del') space.delete(w.key);
    else for (const k of [...space.keys()]) if (k.startsWith(w.prefix)) space.delete(k);
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
