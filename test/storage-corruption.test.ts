// Corruption with real LevelDB files (issue 7, verified storage): a damaged
// write-ahead log, a damaged or missing table, a missing CURRENT and a flipped
// byte in one value each end in a StorageCorruptionError naming the path and
// `--rebuild`, never in a silent drop. Each case first shows, with classic-level
// alone, the silent behaviour the check exists for: what LevelStorage relies
// on (a LOG line, its own checksum, its own look at CURRENT) really is there.
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { indexKey, put, StorageCorruptionError, type StorageWrite } from '../src/core/storage.js';
import { LevelStorage } from '../src/server/level-storage.js';
import { CORRUPTION_MARKER } from '../src/server/leveldb-recovery-check.js';

const SPACES = ['acceptor', 'state'];
const RECORDS = 400;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shardpax-corrupt-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Record i: 200 bytes of text (compressible, as most stored records are). */
function record(i: number): StorageWrite {
  return put(i % 2 === 0 ? 'acceptor' : 'state', indexKey(i), new TextEncoder().encode(`record ${i} `.repeat(20).slice(0, 200)));
}

/** Writes RECORDS records (synced) and closes: they sit in LevelDB's write-ahead log. */
async function fillLog(extra: StorageWrite[] = []): Promise<void> {
  const s = await LevelStorage.create(dir, SPACES);
  for (let i = 0; i < RECORDS; i += 50) {
    await s.write(Array.from({ length: 50 }, (_, j) => record(i + j)), { sync: true });
  }
  await s.write(extra, { sync: true });
  await s.close();
}

/** Opens and closes once more: LevelDB replays the log into a table (*.ldb). */
async function fillTable(extra: StorageWrite[] = []): Promise<string> {
  await fillLog(extra);
  await (await LevelStorage.open(dir, SPACES)).close();
  return only(dir, '.ldb');
}

async function only(folder: string, ext: string): Promise<string> {
  const files = (await readdir(folder)).filter((f) => f.endsWith(ext));
  expect(files).toHaveLength(1);
  return join(folder, files[0] ?? '');
}

async function flipByte(file: string, offset: number): Promise<void> {
  const bytes = await readFile(file);
  expect(offset).toBeLessThan(bytes.length);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x5a;
  await writeFile(file, bytes);
}

/** Every key classic-level alone returns from `folder` (a copy: it may rewrite what it opens). */
async function rawCount(folder: string): Promise<number> {
  const copy = `${folder}-raw`;
  await cp(folder, copy, { recursive: true });
  const db = new ClassicLevel(copy);
  try {
    await db.open();
    return (await db.keys().all()).length;
  } finally {
    await db.close();
    await rm(copy, { recursive: true, force: true });
  }
}

/** Records classic-level alone returns from a point read of every key written, errors counting as readable (reported). */
async function rawReadable(folder: string): Promise<number> {
  const copy = `${folder}-raw`;
  await cp(folder, copy, { recursive: true });
  const db = new ClassicLevel(copy, { valueEncoding: 'view' });
  try {
    await db.open();
    let n = 0;
    for (let i = 0; i < RECORDS; i++) {
      const key = `!${i % 2 === 0 ? 'acceptor' : 'state'}!${indexKey(i)}`;
      try {
        if ((await db.get(key)) !== undefined) n++;
      } catch {
        n++; // LevelDB said something: not silent
      }
    }
    return n;
  } finally {
    await db.close();
    await rm(copy, { recursive: true, force: true });
  }
}

async function loadAll(): Promise<number> {
  const s = await LevelStorage.open(dir, SPACES);
  try {
    await s.tablesChecked();
    const state = await s.loadSpaces(SPACES);
    return [...state.values()].reduce((n, space) => n + space.size, 0);
  } finally {
    await s.close();
  }
}

/** The refusal `p` ends in: a StorageCorruptionError that says what is wrong, where, and the way back. */
async function refusal(p: Promise<unknown>, ...where: Array<string | RegExp>): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StorageCorruptionError);
  const message = err instanceof Error ? err.message : '';
  expect(message).toContain('shardpax server --rebuild');
  for (const w of where) {
    if (typeof w === 'string') expect(message).toContain(w);
    else expect(message).toMatch(w);
  }
}

describe('a damaged write-ahead log', () => {
  it('is refused at open, and on every later open, where LevelDB alone drops records silently', async () => {
    await fillLog();
    const log = await only(dir, '.log');
    // A byte in the middle: its 32 KiB block fails LevelDB's log checksum.
    await flipByte(log, 40_000);
    const keys = await rawCount(dir);
    expect(keys).toBeGreaterThan(0);
    expect(keys).toBeLessThan(RECORDS); // classic-level opens it and drops a block without a word

    await refusal(LevelStorage.open(dir, SPACES), dir, /dropping \d+ bytes; Corruption: checksum mismatch/, log);
    // LevelDB has replayed what it could and deleted the damaged log: only the marker remembers.
    expect(existsSync(log)).toBe(false);
    expect(existsSync(join(dir, CORRUPTION_MARKER))).toBe(true);
    await refusal(LevelStorage.open(dir, SPACES), dir, /an earlier start found it damaged/, log);
  });

  it('is not confused with a write cut short by a crash (a torn tail is no damage)', async () => {
    await fillLog();
    const log = await only(dir, '.log');
    const { size } = await stat(log);
    await truncate(log, size - 100); // the last record half-written, as after a kill mid-write
    expect(await loadAll()).toBe(RECORDS - 50); // that last write lost whole, nothing refused
  });
});

describe('a damaged table', () => {
  it('a flipped byte in one value: LevelDB hands it out as if nothing happened; the table check refuses the folder', async () => {
    const marked = randomBytes(64); // incompressible: stored literally, so it can be found in the table
    const table = await fillTable([put('state', 'victim', marked)]);
    const bytes = await readFile(table);
    const at = bytes.indexOf(marked);
    expect(at).toBeGreaterThan(0);
    await flipByte(table, at + 10);

    // classic-level: no verify_checksums, so LevelDB hands out the damaged bytes.
    const raw = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' });
    await raw.open();
    const got = await raw.get('!state!victim');
    await raw.close();
    expect(got).toBeDefined();
    expect(Buffer.from(got ?? []).subarray(4).equals(marked)).toBe(false);
    expect(Buffer.from(got ?? []).subarray(4).length).toBe(marked.length);

    const s = await LevelStorage.open(dir, SPACES);
    try {
      await refusal(s.tablesChecked(), dir, `table ${table}`, 'checksum mismatch');
      // From then on every call fails: nothing more is read from a damaged store.
      expect(() => s.getSync('state', indexKey(1))).toThrow(StorageCorruptionError);
      await refusal(s.write([record(1)], { sync: true }), table);
    } finally {
      await s.close();
    }
    await refusal(LevelStorage.open(dir, SPACES), /an earlier start found it damaged/, table);
  });

  it('damage LevelDB does not see at all (records silently missing): the table check finds it', async () => {
    const table = await fillTable();
    const original = await readFile(table);
    // Find a flip after which classic-level alone reads fewer records and reports nothing (most often in
    // the filter or index block, at the end of the table).
    let silent: number | undefined;
    for (let at = original.length - 60; at > original.length / 2 && silent === undefined; at -= 97) {
      await writeFile(table, original);
      await flipByte(table, at);
      if ((await rawReadable(dir)) < RECORDS) silent = at;
    }
    expect(silent, 'a flip that LevelDB does not report').toBeDefined();

    const s = await LevelStorage.open(dir, SPACES);
    try {
      await refusal(s.tablesChecked(), dir, `table ${table}`);
    } finally {
      await s.close();
    }
  });

  it("LevelDB's own read errors become a StorageCorruptionError naming the folder, space and key", async () => {
    const table = await fillTable();
    await flipByte(table, 100); // inside the first data block (compressed: it no longer decompresses)
    const s = await LevelStorage.open(dir, SPACES);
    try {
      // At once, before the table check (reading files in the background) can have reported.
      expect(() => s.getSync('acceptor', indexKey(0))).toThrow(`in ${dir}, space "acceptor", key "${indexKey(0)}": LevelDB cannot read it`);
      await refusal(s.loadSpaces(SPACES), dir);
    } finally {
      await s.close();
    }
  });

  it('a table file that is gone is refused at open, naming it', async () => {
    const table = await fillTable();
    await unlink(table);
    await refusal(LevelStorage.open(dir, SPACES), dir, /LevelDB cannot open it: .*missing files/, table.slice(dir.length + 1));
  });
});

describe('a value that is not what was written, in a file LevelDB finds sound', () => {
  // Written through classic-level itself, so every LevelDB checksum holds: only the value's own can tell.
  async function rawPut(key: string, value: (old: Uint8Array) => Uint8Array, from = key): Promise<void> {
    const raw = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' });
    await raw.open();
    const old = await raw.get(from);
    expect(old).toBeDefined();
    await raw.put(key, value(new Uint8Array(old ?? [])));
    await raw.close();
  }

  it('a flipped byte fails its checksum on every read path', async () => {
    await fillLog();
    await rawPut(`!state!${indexKey(1)}`, (v) => v.map((b, i) => (i === 20 ? b ^ 1 : b)));
    const s = await LevelStorage.open(dir, SPACES);
    try {
      await s.tablesChecked(); // LevelDB's files are sound
      const where = `in ${dir}, space "state", key "${indexKey(1)}": checksum mismatch`;
      expect(() => s.getSync('state', indexKey(1))).toThrow(where);
      expect(s.getSync('state', indexKey(3))).toBeDefined(); // the rest reads fine
      await refusal(s.loadSpaces(['state']), where);
      await s.write([{ op: 'snapshot', id: 1 }], { sync: false });
      await refusal(s.scan({ snapshot: 1, space: 'state', gte: '', maxBytes: 1 << 20 }), where);
    } finally {
      await s.close();
    }
    await refusal(LevelStorage.open(dir, SPACES), /an earlier start found it damaged: corrupted storage in .*: checksum mismatch/);
  });

  it('a sound value under another key, or one too short to hold a checksum, fails too', async () => {
    await fillLog();
    await rawPut(`!state!${indexKey(3)}`, (v) => v, `!state!${indexKey(1)}`);
    await rawPut(`!acceptor!${indexKey(0)}`, (v) => v.subarray(0, 2));
    const s = await LevelStorage.open(dir, SPACES);
    try {
      expect(() => s.getSync('state', indexKey(1))).not.toThrow();
      expect(() => s.getSync('state', indexKey(3))).toThrow(`key "${indexKey(3)}": checksum mismatch`);
      expect(() => s.getSync('acceptor', indexKey(0))).toThrow('a 2-byte value, too short to hold its checksum');
    } finally {
      await s.close();
    }
  });
});

describe('a missing CURRENT', () => {
  it('is refused, where LevelDB alone starts an empty store', async () => {
    await fillTable();
    await unlink(join(dir, 'CURRENT'));
    expect(await rawCount(dir)).toBe(0); // create_if_missing: a new, empty database over the old files

    await refusal(LevelStorage.open(dir, SPACES), join(dir, 'CURRENT'), /CURRENT file is missing/);
  });
});

describe('an undamaged folder', () => {
  it('opens again and again with every record', async () => {
    await fillTable();
    for (let i = 0; i < 3; i++) expect(await loadAll()).toBe(RECORDS);
  });
});
