// The real disk (DESIGN.md §1, §3): the Storage port over LevelDB
// (`classic-level`). Each space is a sublevel with UTF-8 keys and raw byte
// values; one write() call is ONE LevelDB batch across all the sublevels it
// touches, so it is atomic and, with `sync`, one fsync covers it and every
// earlier write (group commit).
//
// Same observable behaviour as MemoryStorage (test/storage-contract.ts):
// load() returns the spaces that hold keys (an empty space is absent; read
// through `space()` from core/storage), spaces by name and keys in byte order;
// values never alias caller buffers; a write to a space it was not opened with
// is an Error and applies nothing.
import { inspect } from 'node:util';
import { ClassicLevel, type BatchOperation } from 'classic-level';
import { assert, assertNever } from '../core/assert.js';
import {
  checkKey,
  checkSpaceNames,
  type Storage,
  type StorageWrite,
  type StoredState,
  unknownSpaceError,
} from '../core/storage.js';

type Db = ClassicLevel<string, Uint8Array>;
type Sublevel = ReturnType<typeof openSublevel>;

// A root key outside every sublevel (their keys start with '!'), deleted by an
// empty synced write: abstract-level skips empty batches, and a synced write
// must still make every earlier write durable.
const SYNC_MARKER_KEY = '~sync';

export class LevelStorage implements Storage {
  private constructor(
    private readonly db: Db,
    private readonly spaces: ReadonlyMap<string, Sublevel>,
  ) {}

  /** Opens (creating if missing) the LevelDB at `dir`. Fails if another process or instance holds it. */
  static async open(dir: string, spaces: readonly string[]): Promise<LevelStorage> {
    checkSpaceNames(spaces);
    const db: Db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    try {
      await db.open();
    } catch (error) {
      throw new Error(`cannot open LevelDB storage in ${dir}: ${describe(error)}`, { cause: error });
    }
    const sublevels = new Map<string, Sublevel>();
    for (const name of spaces) sublevels.set(name, openSublevel(db, name));
    return new LevelStorage(db, sublevels);
  }

  async load(): Promise<StoredState> {
    const state = new Map<string, Map<string, Uint8Array>>();
    // One explicit snapshot, so all spaces are read as of the same instant.
    const snapshot = this.db.snapshot();
    try {
      for (const name of [...this.spaces.keys()].sort()) {
        const sublevel = this.spaces.get(name);
        assert(sublevel !== undefined);
        const space = new Map<string, Uint8Array>();
        for await (const [key, value] of sublevel.iterator({ snapshot })) {
          // 'view' values come back as Buffers (maybe over a shared pool): hand out plain copies.
          space.set(key, new Uint8Array(value));
        }
        if (space.size > 0) state.set(name, space);
      }
    } finally {
      await snapshot.close();
    }
    return state;
  }

  async write(writes: readonly StorageWrite[], options: { readonly sync: boolean }): Promise<void> {
    const ops = writes.map((w) => this.toBatchOp(w));
    if (ops.length === 0) {
      if (options.sync) await this.db.del(SYNC_MARKER_KEY, { sync: true });
      return;
    }
    await this.db.batch(ops, { sync: options.sync });
  }

  /** Idempotent. */
  async close(): Promise<void> {
    await this.db.close();
  }

  private toBatchOp(w: StorageWrite): BatchOp {
    const sublevel = this.spaces.get(w.space);
    if (sublevel === undefined) throw unknownSpaceError(w.space, this.spaces.keys());
    checkKey(w.key);
    switch (w.op) {
      case 'put':
        // No copy needed: classic-level copies the bytes into its WriteBatch
        // synchronously, before write() returns (the contract tests pin this).
        return { type: 'put', sublevel, key: w.key, value: w.value };
      case 'del':
        return { type: 'del', sublevel, key: w.key };
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
