// The storage port (STYLE.md 4; DESIGN.md 3). Keys live in named spaces
// (LevelDB sublevels in the real adapter) so acceptor state, the log, the
// replicated state and metadata never collide. State lives on disk, not in
// the heap: a role reads single keys synchronously (getSync, behind LevelDB's
// block cache), reads whole spaces only for the few small ones it keeps in
// memory (metadata, the log tail), and streams large ranges with an async
// scan over a consistent snapshot.
// Adapters: src/sim/memory-storage.ts, src/server/level-storage.ts; both
// pass test/storage-contract.ts.

import { assert } from './assert.js';

/**
 * One step of a write call, applied in order. `put` and `del` of one call are
 * one atomic batch; `clear` and `snapshot` split the call where they stand
 * (what comes before them is applied first), so only keys nobody reads may be
 * cleared, and a snapshot sees exactly the writes issued before it.
 */
export type StorageWrite =
  | { readonly op: 'put'; readonly space: string; readonly key: string; readonly value: Uint8Array }
  | { readonly op: 'del'; readonly space: string; readonly key: string }
  /** Deletes every key of `space` that starts with `prefix` (printable ASCII; '' clears the space). */
  | { readonly op: 'clear'; readonly space: string; readonly prefix: string }
  /** Opens read snapshot `id` of everything written before it (for scan). */
  | { readonly op: 'snapshot'; readonly id: number };

/** Small spaces read at (re)start: space -> key -> value, keys in ascending order. */
export type StoredState = ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>;

/** An ordered read of `space` from `snapshot`, from `gte` up to (not including) `lt`. */
export interface ScanRequest {
  readonly snapshot: number;
  readonly space: string;
  readonly gte: string;
  /** Exclusive upper bound; none: to the end of the space. */
  readonly lt?: string;
  /** Stop once the entries hold this many bytes (keys + values); at least one entry is returned. */
  readonly maxBytes: number;
}

export interface ScanResult {
  readonly entries: ReadonlyArray<readonly [string, Uint8Array]>;
  /** Where the next scan starts (its `gte`); undefined once the range is exhausted. */
  readonly next: string | undefined;
}

/** Where a corruption was found: as much of it as the finder knows. */
export interface CorruptionSite {
  /** The data folder (LevelDB directory), or a file in it. */
  readonly path?: string;
  readonly space?: string;
  readonly key?: string;
}

/**
 * Stored data is damaged or missing (a checksum mismatch, a record that does
 * not decode, a LevelDB file that is gone or that LevelDB had to skip). Never
 * retried or worked around: a node that forgot a promise or an accept breaks
 * Paxos, so it stops and is rebuilt from its peers.
 */
export class StorageCorruptionError extends Error {
  override readonly name = 'StorageCorruptionError';
  /** What was found where, without the advice. */
  readonly summary: string;

  constructor(
    readonly detail: string,
    readonly site: CorruptionSite,
    options?: ErrorOptions,
  ) {
    const summary = `corrupted storage${describeSite(site)}: ${detail}`;
    super(
      `${summary}. This node's data cannot be trusted: it stops and will not start on it again; ` +
        'run `shardpax server --rebuild` to rebuild it from its peers',
      options,
    );
    this.summary = summary;
  }
}

function describeSite(site: CorruptionSite): string {
  const parts: string[] = [];
  if (site.path !== undefined) parts.push(`in ${site.path}`);
  if (site.space !== undefined) parts.push(`space ${JSON.stringify(site.space)}`);
  if (site.key !== undefined) parts.push(`key ${JSON.stringify(site.key)}`);
  return parts.length === 0 ? '' : ` ${parts.join(', ')}`;
}

/** Reads throw StorageCorruptionError when what is stored is not what was written. */
export interface Storage {
  /** The value under `key` as of every completed write, or undefined. */
  getSync(space: string, key: string): Uint8Array | undefined;
  /** Reads whole spaces: only for small, bounded ones (metadata, a log tail). A space with no keys is absent. */
  loadSpaces(names: readonly string[]): Promise<StoredState>;
  /** Rejects if the snapshot is unknown (never opened, released, or lost to a restart). */
  scan(request: ScanRequest): Promise<ScanResult>;
  /** Releases a snapshot; unknown ids are ignored. */
  releaseSnapshot(id: number): void;
  /**
   * Applies the writes in order (see StorageWrite). With `sync`, they (and
   * every earlier write) survive a crash once the promise resolves; without
   * it, a crash may lose them, and every later write with them.
   */
  write(writes: readonly StorageWrite[], options: { readonly sync: boolean }): Promise<void>;
  /**
   * Damage found outside any read (an adapter's background check of its
   * files): the node must stop. Called at once if it is known already; every
   * later call of the storage throws it too.
   */
  onDamage?(listener: (err: StorageCorruptionError) => void): void;
  close(): Promise<void>;
}

// Rules every adapter enforces the same way (test/storage-contract.ts).
/** Space names become LevelDB sublevel names: ASCII that sorts after the '!' separator. */
const SPACE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** With the `u` flag only a lone surrogate matches: UTF-8, LevelDB's key encoding, cannot hold one. */
const LONE_SURROGATE = /\p{Cs}/u;

export function isSpaceName(name: string): boolean {
  return SPACE_NAME.test(name);
}

export function checkSpaceNames(names: readonly string[]): void {
  for (const name of names) assert(isSpaceName(name), `bad storage space name ${JSON.stringify(name)}`);
  assert(new Set(names).size === names.length, `duplicate storage space in [${names.join(', ')}]`);
}

export function checkKey(key: string): void {
  assert(!LONE_SURROGATE.test(key), `storage key ${JSON.stringify(key)} is not valid UTF-16`);
}

/** The key rules of one write, the same in every adapter (each checks the space against its own). */
export function checkWriteKeys(w: StorageWrite): void {
  if (w.op === 'snapshot') return;
  if (w.op !== 'clear') {
    checkKey(w.key);
    return;
  }
  checkKey(w.prefix);
  if (w.prefix !== '') prefixEnd(w.prefix); // asserts the prefix is one a range can end
}

/** A write whose value the caller may reuse afterwards: the adapter keeps this copy. */
export function copyWrite(w: StorageWrite): StorageWrite {
  return w.op === 'put' ? { ...w, value: w.value.slice() } : w;
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

export function clear(space: string, prefix: string): StorageWrite {
  return { op: 'clear', space, prefix };
}

/** Fixed-width key for a non-negative integer, so that byte order is numeric order. */
export function indexKey(n: number): string {
  assert(Number.isSafeInteger(n) && n >= 0, `bad index ${n}`);
  return n.toString(16).padStart(14, '0');
}

/** The first key after every key that starts with `prefix` (a scan's `lt`). Prefixes are ASCII. */
export function prefixEnd(prefix: string): string {
  assert(/^[\x00-\x7e]+$/.test(prefix), `prefix ${JSON.stringify(prefix)} is not printable ASCII`);
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

export function emptyState(): StoredState {
  return new Map();
}

export function space(state: StoredState, name: string): ReadonlyMap<string, Uint8Array> {
  return state.get(name) ?? new Map();
}

/** Bytes a scan entry counts for against `maxBytes` (UTF-16 length stands in for the key's UTF-8 size). */
export function entryBytes(key: string, value: Uint8Array): number {
  return key.length + value.length;
}

/** Cuts a write call into atomic steps: runs of put/del, and each clear or snapshot alone. */
export function splitSteps(writes: readonly StorageWrite[]): StorageWrite[][] {
  const steps: StorageWrite[][] = [];
  let run: StorageWrite[] = [];
  for (const w of writes) {
    if (w.op === 'put' || w.op === 'del') {
      run.push(w);
      continue;
    }
    if (run.length > 0) steps.push(run);
    run = [];
    steps.push([w]);
  }
  if (run.length > 0) steps.push(run);
  return steps;
}
