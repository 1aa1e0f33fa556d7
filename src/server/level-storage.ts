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
// Same observable behaviour as MemoryStorage (test/storage-contract.ts):
// spaces by name and keys in byte order; values never alias caller buffers; a
// write to a space it was not opened with is an Error and applies nothing.
//
// Only `create` makes a new store; `open` refuses a missing one (LevelDB's
// createIfMissing would turn a lost folder or a deleted CURRENT into a silent
// empty store). One root key outside every space holds the node's identity
// record (node-identity.ts), written by `create`'s caller.
import { inspect } from 'node:util';
import { ClassicLevel, type BatchOperation } from 'classic-level';
import { assert, assertNever } from '../core/assert.js';
import {
  checkSpaceNames,
  checkWriteKeys,
  copyWrite,
  entryBytes,
  prefixEnd,
  splitSteps,
  type ScanRequest,
  type ScanResult,
  type Storage,
  type StorageWrite,
  type StoredState,
  unknownSpaceError,
} from '../core/storage.js';

/**
 * LevelDB's block cache: hot state blocks stay decompressed in memory (off
 * the JS heap, inside RSS). Sized so a node's RSS stays far below its
 * budget whatever the data size.
 */
export const BLOCK_CACHE_BYTES = 32 * 1024 * 1024;

type Db = ClassicLevel<string, Uint8Array>;
type Sublevel = ReturnType<typeof openSublevel>;

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

  private constructor(
    private readonly db: Db,
    private readonly spaces: ReadonlyMap<string, Sublevel>,
  ) {}

  /**
   * Opens the existing LevelDB at `dir`. A StorageOpenError when there is
   * none (a missing or empty folder, a missing CURRENT file), when it is
   * damaged, or when another process or instance holds it.
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
    const db: Db = new ClassicLevel<string, Uint8Array>(dir, {
      keyEncoding: 'utf8',
      valueEncoding: 'view',
      cacheSize: BLOCK_CACHE_BYTES,
      ...mode,
    });
    try {
      await db.open();
    } catch (error) {
      throw new StorageOpenError(`cannot open LevelDB storage in ${dir}: ${describe(error)}`, hasCode(error, 'LEVEL_LOCKED'), {
        cause: error,
      });
    }
    const sublevels = new Map<string, Sublevel>();
    for (const name of spaces) sublevels.set(name, openSublevel(db, name));
    return new LevelStorage(db, sublevels);
  }

  getSync(space: string, key: string): Uint8Array | undefined {
    const value = this.sublevel(space).getSync(key);
    // 'view' values come back as Buffers (maybe over a shared pool): hand out plain copies.
    return value === undefined ? undefined : new Uint8Array(value);
  }

  async loadSpaces(names: readonly string[]): Promise<StoredState> {
    const state = new Map<string, Map<string, Uint8Array>>();
    // One explicit snapshot, so all spaces are read as of the same instant.
    const snapshot = this.db.snapshot();
    try {
      for (const name of [...names].sort()) {
        const space = new Map<string, Uint8Array>();
        for await (const [key, value] of this.sublevel(name).iterator({ snapshot })) {
          space.set(key, new Uint8Array(value));
        }
        if (space.size > 0) state.set(name, space);
      }
    } finally {
      await snapshot.close();
    }
    return state;
  }

  async scan(request: ScanRequest): Promise<ScanResult> {
    const snapshot = this.snapshots.get(request.snapshot);
    if (snapshot === undefined) throw new Error(`unknown snapshot ${request.snapshot}`);
    const range = request.lt === undefined ? { gte: request.gte } : { gte: request.gte, lt: request.lt };
    const it = this.sublevel(request.space).iterator({ ...range, snapshot });
    const entries: Array<readonly [string, Uint8Array]> = [];
    let bytes = 0;
    try {
      for (;;) {
        const got = await it.next();
        if (got === undefined) return { entries, next: undefined };
        const [key, value] = got;
        if (entries.length > 0 && bytes >= request.maxBytes) return { entries, next: key };
        entries.push([key, new Uint8Array(value)]);
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
    const steps = splitSteps(writes);
    // Every check before any step is applied: a bad write changes nothing.
    for (const w of writes) {
      if (w.op !== 'snapshot') this.sublevel(w.space);
      checkWriteKeys(w);
    }
    // Steps after the first are handed to LevelDB after an await: keep private copies of their values.
    const owned = steps.map((step, i) => (i === 0 ? step : step.map(copyWrite)));
    for (const step of owned) {
      const first = step[0];
      assert(first !== undefined);
      if (first.op === 'snapshot') {
        this.snapshots.set(first.id, this.db.snapshot());
      } else if (first.op === 'clear') {
        const range = first.prefix === '' ? {} : { gte: first.prefix, lt: prefixEnd(first.prefix) };
        await this.sublevel(first.space).clear(range);
      } else {
        // No options argument: abstract-level copies a batch's options into every
        // operation, which made a batch of hundreds of writes 3-4x slower (measured).
        await this.db.batch(step.map((w) => this.toBatchOp(w)));
      }
    }
    // LevelDB syncs its log in order: one tiny synced write makes every step above durable.
    if (options.sync) await this.db.del(SYNC_MARKER_KEY, { sync: true });
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
    for (const id of [...this.snapshots.keys()]) this.releaseSnapshot(id);
    await this.db.close();
  }

  private sublevel(space: string): Sublevel {
    const sublevel = this.spaces.get(space);
    if (sublevel === undefined) throw unknownSpaceError(space, this.spaces.keys());
    return sublevel;
  }

  private toBatchOp(w: StorageWrite): BatchOp {
    switch (w.op) {
      case 'put':
        // No copy needed: classic-level copies the bytes into its WriteBatch
        // synchronously, before write() returns (the contract tests pin this).
        return { type: 'put', sublevel: this.sublevel(w.space), key: w.key, value: w.value };
      case 'del':
        return { type: 'del', sublevel: this.sublevel(w.space), key: w.key };
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
