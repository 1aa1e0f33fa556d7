// The real disk (DESIGN.md §1, §3): the Storage port over LevelDB
// (`classic-level`). Each space is a sublevel with UTF-8 keys and raw byte
// values; a write() call's puts and deletes are ONE LevelDB batch across all
// the sublevels they touch, so they are atomic and, with `sync`, one fsync
// covers them and every earlier write (group commit). A `clear` or `snapshot`
// op splits the call: the batch before it is written first.
//
// Reads: getSync (LevelDB's block cache, sized by BLOCK_CACHE_BYTES) for
// point reads; scans read from explicit LevelDB snapshots.
//
// Corruption is an error, never a silent drop: every value carries a checksum
// of its space, key and bytes (value-checksum.ts), verified on every read;
// LevelDB's own read errors, the damage its recovery skipped at open
// (leveldb-recovery-check.ts) and damaged table blocks, found by a background
// pass over every table (table-scrubber.ts), become a StorageCorruptionError
// naming the folder.
//
// Same observable behaviour as MemoryStorage (test/storage-contract.ts):
// spaces by name and keys in byte order; values never alias caller buffers; a
// write to a space it was not opened with is an Error and applies nothing.
//
// Only `create` makes a new store; `open` refuses a missing one (LevelDB's
// createIfMissing would turn a lost folder or a deleted CURRENT into a silent
// empty store). One root key outside every space holds the node's identity
// record (node-identity.ts), written by `create`'s caller.
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ClassicLevel, type BatchOperation } from 'classic-level';
import { assert, assertNever } from '../core/assert.js';
import {
  checkSpaceNames,
  type CorruptionSite,
  checkWriteKeys,
  entryBytes,
  prefixEnd,
  splitSteps,
  type ScanRequest,
  type ScanResult,
  type Storage,
  type StorageWrite,
  StorageCorruptionError,
  type StoredState,
  unknownSpaceError,
} from '../core/storage.js';
import { checkBeforeOpen, ignoredDamage, markCorrupted } from './leveldb-recovery-check.js';
import { liveTables, type ScrubDamage, TableScrubber } from './table-scrubber.js';
import { CHECKSUM_BYTES, seal, spaceSeed, unseal } from './value-checksum.js';

/**
 * LevelDB's block cache: hot state blocks stay decompressed in memory (off
 * the JS heap, inside RSS). Sized so a node's RSS stays far below its
 * budget whatever the data size.
 */
export const BLOCK_CACHE_BYTES = 32 * 1024 * 1024;

type Db = ClassicLevel<string, Uint8Array>;

interface Space {
  readonly name: string;
  readonly sublevel: ReturnType<typeof openSublevel>;
  /** The CRC of the space's name, where every value's checksum starts. */
  readonly seed: number;
}

// A root key outside every sublevel (their keys start with '!'), deleted by a
// synced write after the batch: that syncs LevelDB's log, and so every write
// before it, without passing options to the batch itself (see write()).
const SYNC_MARKER_KEY = '~sync';
// A root key outside every sublevel: no space write or clear can touch it.
const IDENTITY_KEY = '~identity';

/** LevelDB would not open a store; `locked`: another process or instance holds it. */
export class StorageOpenError extends Error {
  override readonly name = 'StorageOpenError';
  constructor(
    message: string,
    readonly locked: boolean,
    options: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class LevelStorage implements Storage {
  private readonly snapshots = new Map<number, LevelSnapshot>();
  /** The background check of every table block, started at open. */
  private readonly scrubber: TableScrubber;
  /** Damage the scrubber found: every call throws it from then on. */
  private damage: StorageCorruptionError | undefined;
  private readonly damageListeners: Array<(err: StorageCorruptionError) => void> = [];

  private constructor(
    private readonly dir: string,
    private readonly db: Db,
    private readonly spaces: ReadonlyMap<string, Space>,
  ) {
    this.scrubber = new TableScrubber(dir, liveTables(db.getProperty('leveldb.sstables')));
    void this.scrubber.done.then((found) => {
      if (found !== undefined) this.damaged(found);
    });
  }

  /**
   * Opens the existing LevelDB at `dir`. A StorageOpenError when there is
   * none (a missing or empty folder) or another process or instance holds it;
   * a StorageCorruptionError when its files are damaged or missing.
   */
  static open(dir: string, spaces: readonly string[]): Promise<LevelStorage> {
    return LevelStorage.openDb(dir, spaces, { createIfMissing: false });
  }

  /** Creates a new LevelDB at `dir` (its parent must exist); a StorageOpenError if one is there already. */
  static create(dir: string, spaces: readonly string[]): Promise<LevelStorage> {
    return LevelStorage.openDb(dir, spaces, { createIfMissing: true, errorIfExists: true });
  }

  private static async openDb(
    dir: string,
    spaces: readonly string[],
    mode: { readonly createIfMissing: boolean; readonly errorIfExists?: boolean },
  ): Promise<LevelStorage> {
    checkSpaceNames(spaces);
    checkBeforeOpen(dir);
    const db: Db = new ClassicLevel<string, Uint8Array>(dir, {
      keyEncoding: 'utf8',
      valueEncoding: 'view',
      cacheSize: BLOCK_CACHE_BYTES,
      ...mode,
    });
    try {
      await db.open();
    } catch (error) {
      if (hasCode(error, 'LEVEL_CORRUPTION')) {
        throw new StorageCorruptionError(`LevelDB cannot open it: ${describe(error)}`, { path: dir }, { cause: error });
      }
      throw new StorageOpenError(`cannot open LevelDB storage in ${dir}: ${describe(error)}`, hasCode(error, 'LEVEL_LOCKED'), {
        cause: error,
      });
    }
    const damage = ignoredDamage(dir);
    if (damage.length > 0) {
      const what = `LevelDB skipped damaged data while opening it (from ${join(dir, 'LOG')}): ${damage.join(' | ')}`;
      markCorrupted(dir, what);
      await db.close();
      throw new StorageCorruptionError(what, { path: dir });
    }
    const opened = new Map<string, Space>();
    for (const name of spaces) opened.set(name, { name, sublevel: openSublevel(db, name), seed: spaceSeed(name) });
    // A new sublevel opens on a later tick; getSync cannot wait for it.
    await Promise.all([...opened.values()].map((s) => s.sublevel.open()));
    return new LevelStorage(dir, db, opened);
  }

  getSync(space: string, key: string): Uint8Array | undefined {
    this.checkIntact();
    const s = this.space(space);
    let stored: Uint8Array | undefined;
    try {
      stored = s.sublevel.getSync(key);
    } catch (error) {
      throw this.readError(error, { space, key });
    }
    return stored === undefined ? undefined : this.unseal(s, key, stored);
  }

  async loadSpaces(names: readonly string[]): Promise<StoredState> {
    this.checkIntact();
    const state = new Map<string, Map<string, Uint8Array>>();
    // One explicit snapshot, so all spaces are read as of the same instant.
    const snapshot = this.db.snapshot();
    try {
      for (const name of [...names].sort()) {
        const s = this.space(name);
        const values = new Map<string, Uint8Array>();
        try {
          for await (const [key, stored] of s.sublevel.iterator({ snapshot })) values.set(key, this.unseal(s, key, stored));
        } catch (error) {
          throw this.readError(error, { space: name });
        }
        if (values.size > 0) state.set(name, values);
      }
    } finally {
      await snapshot.close();
    }
    return state;
  }

  async scan(request: ScanRequest): Promise<ScanResult> {
    this.checkIntact();
    const snapshot = this.snapshots.get(request.snapshot);
    if (snapshot === undefined) throw new Error(`unknown snapshot ${request.snapshot}`);
    const range = request.lt === undefined ? { gte: request.gte } : { gte: request.gte, lt: request.lt };
    const s = this.space(request.space);
    const it = s.sublevel.iterator({ ...range, snapshot });
    const entries: Array<readonly [string, Uint8Array]> = [];
    let bytes = 0;
    try {
      for (;;) {
        let got: [string, Uint8Array] | undefined;
        try {
          got = await it.next();
        } catch (error) {
          throw this.readError(error, { space: request.space });
        }
        if (got === undefined) return { entries, next: undefined };
        const [key, stored] = got;
        if (entries.length > 0 && bytes >= request.maxBytes) return { entries, next: key };
        const value = this.unseal(s, key, stored);
        entries.push([key, value]);
        bytes += entryBytes(key, value);
      }
    } finally {
      await it.close();
    }
  }

  releaseSnapshot(id: number): void {
    const s = this.snapshots.get(id);
    if (s === undefined) return;
    this.snapshots.delete(id);
    s.close().catch(() => {}); // closing only frees resources; nothing to report
  }

  async write(writes: readonly StorageWrite[], options: { readonly sync: boolean }): Promise<void> {
    this.checkIntact();
    // Every check before any step is applied: a bad write changes nothing.
    for (const w of writes) {
      if (w.op !== 'snapshot') this.space(w.space);
      checkWriteKeys(w);
    }
    // Prepared before the first await: sealing copies each value, so the caller may reuse its buffers at once.
    const steps = splitSteps(writes).map((step) => this.prepare(step));
    for (const step of steps) {
      switch (step.kind) {
        case 'snapshot':
          this.snapshots.set(step.id, this.db.snapshot());
          break;
        case 'clear':
          await step.space.sublevel.clear(step.prefix === '' ? {} : { gte: step.prefix, lt: prefixEnd(step.prefix) });
          break;
        case 'batch':
          // No options argument: abstract-level copies a batch's options into every
          // operation, which made a batch of hundreds of writes 3-4x slower (measured).
          await this.db.batch(step.ops);
          break;
        default:
          assertNever(step, 'prepared step');
      }
    }
    // LevelDB syncs its log in order: one tiny synced write makes every step above durable.
    if (options.sync) await this.db.del(SYNC_MARKER_KEY, { sync: true });
  }

  onDamage(listener: (err: StorageCorruptionError) => void): void {
    this.damageListeners.push(listener);
    if (this.damage !== undefined) listener(this.damage);
  }

  /** Resolves once the background check of every table at open has passed; rejects with the damage it found. */
  async tablesChecked(): Promise<void> {
    await this.scrubber.done;
    this.checkIntact();
  }

  /** The identity record's bytes (node-identity.ts), or undefined when the store has none. */
  readIdentity(): Uint8Array | undefined {
    const value = this.db.getSync(IDENTITY_KEY);
    return value === undefined ? undefined : new Uint8Array(value);
  }

  /** Replaces the identity record, synced. */
  async writeIdentity(value: Uint8Array): Promise<void> {
    await this.db.put(IDENTITY_KEY, value, { sync: true });
  }

  /** Idempotent. */
  async close(): Promise<void> {
    await this.scrubber.stop();
    for (const id of [...this.snapshots.keys()]) this.releaseSnapshot(id);
    await this.db.close();
  }

  private checkIntact(): void {
    if (this.damage !== undefined) throw this.damage;
  }

  private damaged(found: ScrubDamage): void {
    const err = this.found(new StorageCorruptionError(`table ${found.file}: ${found.what}`, { path: this.dir }));
    this.damage = err;
    for (const listener of this.damageListeners) listener(err);
  }

  private space(name: string): Space {
    const s = this.spaces.get(name);
    if (s === undefined) throw unknownSpaceError(name, this.spaces.keys());
    return s;
  }

  /** The value stored under `key`, checked against its checksum. */
  private unseal(s: Space, key: string, stored: Uint8Array): Uint8Array {
    const value = unseal(s.seed, key, stored);
    if (value === undefined) {
      const what = stored.length < CHECKSUM_BYTES ? `a ${stored.length}-byte value, too short to hold its checksum` : 'checksum mismatch';
      throw this.found(new StorageCorruptionError(what, { path: this.dir, space: s.name, key }));
    }
    return value;
  }

  /** A LevelDB read error: corruption it detected becomes a StorageCorruptionError. */
  private readError(error: unknown, site: Omit<CorruptionSite, 'path'>): unknown {
    if (!hasCode(error, 'LEVEL_CORRUPTION')) return error;
    return this.found(new StorageCorruptionError(`LevelDB cannot read it: ${describe(error)}`, { path: this.dir, ...site }, { cause: error }));
  }

  /** Damage a read found: written down, so that later starts refuse the folder too. */
  private found(err: StorageCorruptionError): StorageCorruptionError {
    markCorrupted(this.dir, err.summary);
    return err;
  }

  /** One step of splitSteps() as LevelDB will run it. */
  private prepare(step: readonly StorageWrite[]): PreparedStep {
    const first = step[0];
    assert(first !== undefined);
    if (first.op === 'snapshot') return { kind: 'snapshot', id: first.id };
    if (first.op === 'clear') return { kind: 'clear', space: this.space(first.space), prefix: first.prefix };
    return { kind: 'batch', ops: step.map((w) => this.toBatchOp(w)) };
  }

  private toBatchOp(w: StorageWrite): BatchOp {
    switch (w.op) {
      case 'put': {
        const s = this.space(w.space);
        return { type: 'put', sublevel: s.sublevel, key: w.key, value: seal(s.seed, w.key, w.value) };
      }
      case 'del':
        return { type: 'del', sublevel: this.space(w.space).sublevel, key: w.key };
      case 'clear':
      case 'snapshot':
        throw new Error(`${w.op} is not a batch operation`);
      default:
        return assertNever(w, 'StorageWrite');
    }
  }
}

function openSublevel(db: Db, name: string) {
  // Explicit encodings: a sublevel does not inherit them from its parent.
  return db.sublevel<string, Uint8Array>(name, { keyEncoding: 'utf8', valueEncoding: 'view' });
}

type BatchOp = BatchOperation<Db, string, Uint8Array>;
type PreparedStep =
  | { readonly kind: 'batch'; readonly ops: BatchOp[] }
  | { readonly kind: 'clear'; readonly space: Space; readonly prefix: string }
  | { readonly kind: 'snapshot'; readonly id: number };
type LevelSnapshot = ReturnType<Db['snapshot']>;

/** Whether `error` or one of its causes has this code. */
function hasCode(error: unknown, code: string): boolean {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    if ('code' in current && current.code === code) return true;
    current = current.cause;
  }
  return false;
}

/** The message of an error and of its causes, with their codes (e.g. LEVEL_LOCKED). */
function describe(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 5; depth++) {
    if (!(current instanceof Error)) {
      parts.push(inspect(current));
      break;
    }
    const code = 'code' in current && typeof current.code === 'string' ? ` [${current.code}]` : '';
    parts.push(`${current.message}${code}`);
    current = current.cause;
  }
  return parts.join(': ');
}
