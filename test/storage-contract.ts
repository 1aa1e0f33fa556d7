// The Storage port's contract (STYLE.md 4, after automerge-repo): one suite
// that every adapter runs (test/storage.test.ts runs it against MemoryStorage
// and LevelStorage), so the simulator's disk and the real one cannot drift
// apart. Durability across a crash is adapter-specific and tested there.
//
// An adapter under test must be opened with exactly CONTRACT_SPACES.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AssertionError } from '../src/core/assert.js';
import { del, indexKey, put, space, type Storage, type StorageWrite, type StoredState } from '../src/core/storage.js';

export const CONTRACT_SPACES: readonly string[] = ['alpha', 'beta', 'gamma'];

export interface StorageFixture {
  /** A fresh, empty, open storage over CONTRACT_SPACES. */
  readonly storage: Storage;
  /** Opens the same data again; the caller has closed every earlier handle. */
  readonly reopen: () => Promise<Storage>;
  /** Closes whatever handle is still open and removes what the fixture created. */
  readonly cleanup: () => Promise<void>;
}

const bytes = (...xs: number[]): Uint8Array => new Uint8Array(xs);

/** The state as plain nested arrays, order included, for exact comparisons. */
function dump(state: StoredState): [string, [string, number[]][]][] {
  return [...state].map(([name, sp]) => [name, [...sp].map(([k, v]) => [k, [...v]])]);
}

export function storageContract(name: string, open: () => Promise<StorageFixture>): void {
  describe(`Storage contract: ${name}`, () => {
    let fx: StorageFixture;
    let storage: Storage;

    beforeEach(async () => {
      fx = await open();
      storage = fx.storage;
    });

    afterEach(async () => {
      await fx.cleanup();
    });

    it('starts empty: no space is returned, and space() reads as empty', async () => {
      const state = await storage.load();
      expect(state.size).toBe(0);
      for (const s of CONTRACT_SPACES) expect(space(state, s).size).toBe(0);
    });

    it('returns a put through load, and overwrites on a second put', async () => {
      await storage.write([put('alpha', 'k', bytes(1, 2, 3))], { sync: true });
      expect(dump(await storage.load())).toEqual([['alpha', [['k', [1, 2, 3]]]]]);
      await storage.write([put('alpha', 'k', bytes(9))], { sync: false });
      expect(dump(await storage.load())).toEqual([['alpha', [['k', [9]]]]]);
    });

    it('round-trips an empty value and an empty key', async () => {
      await storage.write([put('alpha', '', bytes()), put('alpha', 'e', bytes())], { sync: true });
      expect(dump(await storage.load())).toEqual([['alpha', [['', []], ['e', []]]]]);
    });

    it('deletes, and an emptied space disappears from load', async () => {
      await storage.write([put('alpha', 'a', bytes(1)), put('alpha', 'b', bytes(2)), put('beta', 'x', bytes(3))], {
        sync: true,
      });
      await storage.write([del('alpha', 'a')], { sync: true });
      expect(dump(await storage.load())).toEqual([
        ['alpha', [['b', [2]]]],
        ['beta', [['x', [3]]]],
      ]);
      await storage.write([del('beta', 'x'), del('beta', 'never-there')], { sync: true });
      const state = await storage.load();
      expect([...state.keys()]).toEqual(['alpha']);
      expect(space(state, 'beta').size).toBe(0);
    });

    it('applies one write across spaces, in order within the call', async () => {
      await storage.write(
        [
          put('gamma', 'g', bytes(7)),
          put('alpha', 'x', bytes(1)),
          del('alpha', 'x'), // put then del: gone
          del('beta', 'y'),
          put('beta', 'y', bytes(2)), // del then put: there
          put('beta', 'z', bytes(3)),
          put('beta', 'z', bytes(4)), // last put wins
        ],
        { sync: true },
      );
      expect(dump(await storage.load())).toEqual([
        ['beta', [['y', [2]], ['z', [4]]]],
        ['gamma', [['g', [7]]]],
      ]);
    });

    it('rejects a write naming an unknown space and applies none of it', async () => {
      await storage.write([put('alpha', 'keep', bytes(1))], { sync: true });
      await expect(
        storage.write([put('alpha', 'new', bytes(2)), del('alpha', 'keep'), put('nope', 'k', bytes(3))], {
          sync: true,
        }),
      ).rejects.toThrow(/unknown storage space "nope"/);
      expect(dump(await storage.load())).toEqual([['alpha', [['keep', [1]]]]]);
    });

    it('rejects a key that is not valid UTF-16 (a lone surrogate)', async () => {
      await expect(storage.write([put('alpha', 'a\uD800', bytes(1))], { sync: true })).rejects.toThrow(AssertionError);
      expect((await storage.load()).size).toBe(0);
    });

    it('returns spaces by name and keys in byte order: indexKey is numeric order', async () => {
      const ns = [10, 2, 0, 255, 1, 16, 2 ** 40, 3];
      await storage.write(
        ns.map((n) => put('gamma', indexKey(n), bytes(n % 256))),
        { sync: true },
      );
      await storage.write([put('beta', 'b', bytes()), put('alpha', 'a', bytes())], { sync: true });
      const state = await storage.load();
      expect([...state.keys()]).toEqual(['alpha', 'beta', 'gamma']);
      const sorted = [...ns].sort((a, b) => a - b);
      expect([...space(state, 'gamma').keys()]).toEqual(sorted.map(indexKey));
    });

    it('orders keys by UTF-8 bytes, not UTF-16 units (U+FFFF before U+10000)', async () => {
      const keys = ['\u{10000}', 'b', '\uFFFF', '', 'a', 'ab', '\u00e9', 'B'];
      await storage.write(
        keys.map((k) => put('alpha', k, bytes(1))),
        { sync: true },
      );
      expect([...space(await storage.load(), 'alpha').keys()]).toEqual([
        '',
        'B',
        'a',
        'ab',
        'b',
        '\u00e9',
        '\uFFFF',
        '\u{10000}',
      ]);
    });

    it('copies values: mutating the caller buffer, even before write resolves, changes nothing', async () => {
      const backing = bytes(0, 1, 2, 3, 4, 5);
      const view = backing.subarray(2, 5); // [2, 3, 4], at an offset in a larger buffer
      const written = storage.write([put('alpha', 'k', view)], { sync: true });
      backing.fill(99);
      await written;
      const loaded = space(await storage.load(), 'alpha').get('k');
      expect(loaded && [...loaded]).toEqual([2, 3, 4]);
    });

    it('hands out fresh plain Uint8Arrays and fresh maps on every load', async () => {
      await storage.write([put('alpha', 'k', bytes(1, 2))], { sync: true });
      const first = await storage.load();
      const value = space(first, 'alpha').get('k');
      expect(value).toBeDefined();
      if (value === undefined) return;
      expect(Object.getPrototypeOf(value)).toBe(Uint8Array.prototype);
      expect(value.byteLength).toBe(2);
      value.fill(7);
      (space(first, 'alpha') as Map<string, Uint8Array>).delete('k');
      (first as Map<string, ReadonlyMap<string, Uint8Array>>).clear();
      expect(dump(await storage.load())).toEqual([['alpha', [['k', [1, 2]]]]]);
    });

    it('accepts an empty write, synced or not', async () => {
      await storage.write([], { sync: false });
      await storage.write([], { sync: true });
      expect((await storage.load()).size).toBe(0);
    });

    it('keeps many keys (more than one read batch) in order', async () => {
      const n = 2000;
      const writes: StorageWrite[] = [];
      for (let i = n - 1; i >= 0; i--) writes.push(put('beta', indexKey(i), new Uint8Array(64).fill(i % 256)));
      await storage.write(writes, { sync: true });
      const beta = space(await storage.load(), 'beta');
      expect(beta.size).toBe(n);
      let i = 0;
      for (const [k, v] of beta) {
        expect(k).toBe(indexKey(i));
        expect(v[63]).toBe(i % 256);
        i++;
      }
    });

    it('keeps synced and unsynced writes across a clean close and reopen', async () => {
      await storage.write([put('alpha', 'synced', bytes(1)), put('beta', 'gone', bytes(0))], { sync: true });
      await storage.write([put('gamma', 'unsynced', bytes(2)), del('beta', 'gone')], { sync: false });
      await storage.close();
      const again = await fx.reopen();
      expect(dump(await again.load())).toEqual([
        ['alpha', [['synced', [1]]]],
        ['gamma', [['unsynced', [2]]]],
      ]);
      await again.write([put('alpha', 'after', bytes(3))], { sync: true });
      expect([...space(await again.load(), 'alpha').keys()]).toEqual(['after', 'synced']);
    });

    it('rejects writes and loads after close; close is idempotent', async () => {
      await storage.close();
      await storage.close();
      await expect(storage.write([put('alpha', 'k', bytes(1))], { sync: true })).rejects.toThrow();
      await expect(storage.load()).rejects.toThrow();
      const again = await fx.reopen();
      expect((await again.load()).size).toBe(0);
    });
  });
}
