// The Storage port's contract (STYLE.md 4, after automerge-repo): one suite
// that every adapter runs (test/storage.test.ts runs it against MemoryStorage
// and LevelStorage), so the simulator's disk and the real one cannot drift
// apart. Durability across a crash is adapter-specific and tested there.
//
// An adapter under test must be opened with exactly CONTRACT_SPACES.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AssertionError } from '../src/core/assert.js';
import {
  clear,
  del,
  indexKey,
  put,
  space,
  type ScanRequest,
  type ScanResult,
  type Storage,
  type StorageWrite,
  type StoredState,
} from '../src/core/storage.js';

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

/** Every contract space, as a restarting node would read them. */
function loadAll(storage: Storage): Promise<StoredState> {
  return storage.loadSpaces(CONTRACT_SPACES);
}

/** A scan result as plain arrays, for exact comparisons. */
function scanDump(r: ScanResult): { entries: [string, number[]][]; next: string | undefined } {
  return { entries: r.entries.map(([k, v]) => [k, [...v]]), next: r.next };
}

/** Keys of a whole range, page by page; also checks each page resumes where the last one stopped. */
async function scanAll(storage: Storage, request: ScanRequest): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let gte: string | undefined = request.gte;
  let pages = 0;
  while (gte !== undefined) {
    const page: ScanResult = await storage.scan({ ...request, gte });
    expect(page.entries.length).toBeGreaterThan(0);
    if (pages > 0) expect(page.entries[0]?.[0]).toBe(gte); // `next` is the first key of the next page
    keys.push(...page.entries.map(([k]) => k));
    gte = page.next;
    pages += 1;
  }
  return { keys, pages };
}

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
      const state = await loadAll(storage);
      expect(state.size).toBe(0);
      for (const s of CONTRACT_SPACES) expect(space(state, s).size).toBe(0);
    });

    it('returns a put through load, and overwrites on a second put', async () => {
      await storage.write([put('alpha', 'k', bytes(1, 2, 3))], { sync: true });
      expect(dump(await loadAll(storage))).toEqual([['alpha', [['k', [1, 2, 3]]]]]);
      await storage.write([put('alpha', 'k', bytes(9))], { sync: false });
      expect(dump(await loadAll(storage))).toEqual([['alpha', [['k', [9]]]]]);
    });

    it('round-trips an empty value and an empty key', async () => {
      await storage.write([put('alpha', '', bytes()), put('alpha', 'e', bytes())], { sync: true });
      expect(dump(await loadAll(storage))).toEqual([['alpha', [['', []], ['e', []]]]]);
    });

    it('deletes, and an emptied space disappears from load', async () => {
      await storage.write([put('alpha', 'a', bytes(1)), put('alpha', 'b', bytes(2)), put('beta', 'x', bytes(3))], {
        sync: true,
      });
      await storage.write([del('alpha', 'a')], { sync: true });
      expect(dump(await loadAll(storage))).toEqual([
        ['alpha', [['b', [2]]]],
        ['beta', [['x', [3]]]],
      ]);
      await storage.write([del('beta', 'x'), del('beta', 'never-there')], { sync: true });
      const state = await loadAll(storage);
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
      expect(dump(await loadAll(storage))).toEqual([
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
      expect(dump(await loadAll(storage))).toEqual([['alpha', [['keep', [1]]]]]);
    });

    it('rejects a key that is not valid UTF-16 (a lone surrogate)', async () => {
      await expect(storage.write([put('alpha', 'a\uD800', bytes(1))], { sync: true })).rejects.toThrow(AssertionError);
      expect((await loadAll(storage)).size).toBe(0);
    });

    it('returns spaces by name and keys in byte order: indexKey is numeric order', async () => {
      const ns = [10, 2, 0, 255, 1, 16, 2 ** 40, 3];
      await storage.write(
        ns.map((n) => put('gamma', indexKey(n), bytes(n % 256))),
        { sync: true },
      );
      await storage.write([put('beta', 'b', bytes()), put('alpha', 'a', bytes())], { sync: true });
      const state = await loadAll(storage);
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
      expect([...space(await loadAll(storage), 'alpha').keys()]).toEqual([
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
      const loaded = space(await loadAll(storage), 'alpha').get('k');
      expect(loaded && [...loaded]).toEqual([2, 3, 4]);
    });

    it('hands out fresh plain Uint8Arrays and fresh maps on every load', async () => {
      await storage.write([put('alpha', 'k', bytes(1, 2))], { sync: true });
      const first = await loadAll(storage);
      const value = space(first, 'alpha').get('k');
      expect(value).toBeDefined();
      if (value === undefined) return;
      expect(Object.getPrototypeOf(value)).toBe(Uint8Array.prototype);
      expect(value.byteLength).toBe(2);
      value.fill(7);
      (space(first, 'alpha') as Map<string, Uint8Array>).delete('k');
      (first as Map<string, ReadonlyMap<string, Uint8Array>>).clear();
      expect(dump(await loadAll(storage))).toEqual([['alpha', [['k', [1, 2]]]]]);
    });

    it('accepts an empty write, synced or not', async () => {
      await storage.write([], { sync: false });
      await storage.write([], { sync: true });
      expect((await loadAll(storage)).size).toBe(0);
    });

    it('keeps many keys (more than one read batch) in order', async () => {
      const n = 2000;
      const writes: StorageWrite[] = [];
      for (let i = n - 1; i >= 0; i--) writes.push(put('beta', indexKey(i), new Uint8Array(64).fill(i % 256)));
      await storage.write(writes, { sync: true });
      const beta = space(await loadAll(storage), 'beta');
      expect(beta.size).toBe(n);
      let i = 0;
      for (const [k, v] of beta) {
        expect(k).toBe(indexKey(i));
        expect(v[63]).toBe(i % 256);
        i++;
      }
    });

    it('loads only the spaces it is asked for, and rejects an unknown one', async () => {
      await storage.write([put('alpha', 'a', bytes(1)), put('beta', 'b', bytes(2)), put('gamma', 'g', bytes(3))], {
        sync: true,
      });
      expect(dump(await storage.loadSpaces(['gamma', 'alpha']))).toEqual([
        ['alpha', [['a', [1]]]],
        ['gamma', [['g', [3]]]],
      ]);
      expect(dump(await storage.loadSpaces([]))).toEqual([]);
      await expect(storage.loadSpaces(['alpha', 'nope'])).rejects.toThrow(/unknown storage space "nope"/);
    });

    describe('getSync', () => {
      it('sees every completed write, synced or not, and undefined for an absent key', async () => {
        expect(storage.getSync('alpha', 'k')).toBeUndefined();
        await storage.write([put('alpha', 'k', bytes(1)), put('beta', 'k', bytes(2))], { sync: true });
        expect(storage.getSync('alpha', 'k')).toEqual(bytes(1));
        expect(storage.getSync('beta', 'k')).toEqual(bytes(2));
        expect(storage.getSync('gamma', 'k')).toBeUndefined();
        await storage.write([put('alpha', 'k', bytes(3)), put('alpha', 'u', bytes())], { sync: false });
        expect(storage.getSync('alpha', 'k')).toEqual(bytes(3));
        expect(storage.getSync('alpha', 'u')).toEqual(bytes()); // present and empty, not absent
        await storage.write([del('alpha', 'k')], { sync: false });
        expect(storage.getSync('alpha', 'k')).toBeUndefined();
        expect(storage.getSync('alpha', 'u')).toEqual(bytes());
      });

      it('hands out fresh plain Uint8Arrays that do not alias the stored value or the written buffer', async () => {
        const written = bytes(1, 2, 3);
        await storage.write([put('alpha', 'k', written)], { sync: true });
        written.fill(9);
        const first = storage.getSync('alpha', 'k');
        expect(first).toBeDefined();
        if (first === undefined) return;
        expect(Object.getPrototypeOf(first)).toBe(Uint8Array.prototype);
        expect([...first]).toEqual([1, 2, 3]);
        first.fill(7);
        const second = storage.getSync('alpha', 'k');
        expect(second && [...second]).toEqual([1, 2, 3]);
        expect(second).not.toBe(first);
      });

      it('keeps the exact key: no prefix, case or normalization matches', async () => {
        await storage.write([put('alpha', 'key', bytes(1)), put('alpha', '\u00e9', bytes(2))], { sync: true });
        for (const k of ['ke', 'keyy', 'KEY', 'e\u0301', '']) expect(storage.getSync('alpha', k)).toBeUndefined();
        expect(storage.getSync('alpha', '\u00e9')).toEqual(bytes(2));
      });

      it('throws on an unknown space', () => {
        expect(() => storage.getSync('nope', 'k')).toThrow(/unknown storage space "nope"/);
      });
    });

    describe('clear', () => {
      const keys = ['a', 'ab', 'ab\u0000', 'abc', 'ab\u00e9', 'ab\u{1F511}', 'ab~', 'ac', 'b', 'aa', 'A'];

      it('deletes exactly the keys of the space that start with the prefix', async () => {
        await storage.write(
          [...keys.map((k) => put('alpha', k, bytes(1))), put('beta', 'ab', bytes(2)), put('beta', 'abc', bytes(2))],
          { sync: true },
        );
        await storage.write([clear('alpha', 'ab')], { sync: true });
        const kept = keys.filter((k) => !k.startsWith('ab'));
        const state = await loadAll(storage);
        expect(new Set(space(state, 'alpha').keys())).toEqual(new Set(kept));
        expect([...space(state, 'beta').keys()]).toEqual(['ab', 'abc']); // another space is untouched
        for (const k of keys) expect(storage.getSync('alpha', k) !== undefined).toBe(!k.startsWith('ab'));
      });

      it('with prefix "" empties the space, and only that space', async () => {
        await storage.write([...keys.map((k) => put('alpha', k, bytes(1))), put('gamma', 'g', bytes(3))], {
          sync: true,
        });
        await storage.write([clear('alpha', ''), clear('beta', '')], { sync: true });
        expect(dump(await loadAll(storage))).toEqual([['gamma', [['g', [3]]]]]);
        expect(storage.getSync('alpha', 'a')).toBeUndefined();
        expect(storage.getSync('alpha', '')).toBeUndefined();
      });

      it('a clear with prefix "" applies in order within its call', async () => {
        await storage.write([put('alpha', 'old', bytes(1))], { sync: true });
        await storage.write([put('alpha', 'before', bytes(2)), clear('alpha', ''), put('alpha', 'after', bytes(3))], {
          sync: false,
        });
        expect(dump(await loadAll(storage))).toEqual([['alpha', [['after', [3]]]]]);
      });

      it('clears an absent prefix or an empty space as a no-op', async () => {
        await storage.write([put('alpha', 'k', bytes(1))], { sync: true });
        await storage.write([clear('alpha', 'zz'), clear('alpha', 'kk'), clear('beta', 'k')], { sync: true });
        expect(dump(await loadAll(storage))).toEqual([['alpha', [['k', [1]]]]]);
      });

      it('applies in order with the puts and deletes before and after it in the same call', async () => {
        await storage.write([put('alpha', 'p/old', bytes(1)), put('alpha', 'q', bytes(1))], { sync: true });
        await storage.write(
          [
            put('alpha', 'p/before', bytes(2)), // cleared
            del('alpha', 'q'),
            clear('alpha', 'p/'),
            put('alpha', 'p/after', bytes(3)), // kept
            put('beta', 'p/x', bytes(4)),
            clear('alpha', 'p/z'),
            put('alpha', 'p/z', bytes(5)), // kept: the second clear came before it
          ],
          { sync: false },
        );
        expect(dump(await loadAll(storage))).toEqual([
          ['alpha', [['p/after', [3]], ['p/z', [5]]]],
          ['beta', [['p/x', [4]]]],
        ]);
        expect(storage.getSync('alpha', 'p/before')).toBeUndefined();
        expect(storage.getSync('alpha', 'p/old')).toBeUndefined();
        expect(storage.getSync('alpha', 'p/after')).toEqual(bytes(3));
      });

      it('rejects a clear of an unknown space and applies nothing of the call', async () => {
        await storage.write([put('alpha', 'k', bytes(1))], { sync: true });
        await expect(storage.write([put('alpha', 'n', bytes(2)), clear('nope', '')], { sync: true })).rejects.toThrow(
          /unknown storage space "nope"/,
        );
        expect(dump(await loadAll(storage))).toEqual([['alpha', [['k', [1]]]]]);
      });
    });

    describe('snapshots and scan', () => {
      /** Puts key -> one byte per key, in the given order. */
      function puts(name: string, ks: readonly string[], value = 1): StorageWrite[] {
        return ks.map((k) => put(name, k, bytes(value)));
      }

      it('a snapshot op sees the writes before it in the call, and none after', async () => {
        await storage.write([put('alpha', 'early', bytes(1))], { sync: true });
        await storage.write(
          [
            put('alpha', 'a', bytes(1)),
            del('alpha', 'early'),
            { op: 'snapshot', id: 1 },
            put('alpha', 'a', bytes(2)),
            put('alpha', 'b', bytes(2)),
          ],
          { sync: false },
        );
        await storage.write([put('alpha', 'c', bytes(3)), clear('alpha', 'a')], { sync: true });
        const r = await storage.scan({ snapshot: 1, space: 'alpha', gte: '', maxBytes: 1 << 20 });
        expect(scanDump(r)).toEqual({ entries: [['a', [1]]], next: undefined });
        expect(storage.getSync('alpha', 'a')).toBeUndefined(); // the live state moved on
        expect(storage.getSync('alpha', 'b')).toEqual(bytes(2));
        storage.releaseSnapshot(1);
      });

      it('keeps several snapshots apart, each over every space', async () => {
        await storage.write([put('alpha', 'k', bytes(1)), { op: 'snapshot', id: 7 }], { sync: false });
        await storage.write([put('beta', 'k', bytes(2)), { op: 'snapshot', id: 8 }], { sync: true });
        const scan = (snapshot: number, name: string) =>
          storage.scan({ snapshot, space: name, gte: '', maxBytes: 100 }).then(scanDump);
        expect(await scan(7, 'alpha')).toEqual({ entries: [['k', [1]]], next: undefined });
        expect(await scan(7, 'beta')).toEqual({ entries: [], next: undefined });
        expect(await scan(8, 'beta')).toEqual({ entries: [['k', [2]]], next: undefined });
        storage.releaseSnapshot(7);
        expect(await scan(8, 'alpha')).toEqual({ entries: [['k', [1]]], next: undefined });
        storage.releaseSnapshot(8);
      });

      it('returns keys in byte order within [gte, lt), and to the end without lt', async () => {
        const ks = ['b', 'a', 'c/2', 'c/10', 'c', 'c/1', 'd', '\u{10000}', '\uFFFF', ''];
        await storage.write([...puts('alpha', ks), ...puts('beta', ['c/3']), { op: 'snapshot', id: 1 }], {
          sync: true,
        });
        const keysOf = async (gte: string, lt?: string) =>
          (
            await storage.scan({ snapshot: 1, space: 'alpha', gte, ...(lt === undefined ? {} : { lt }), maxBytes: 1000 })
          ).entries.map(([k]) => k);
        expect(await keysOf('')).toEqual(['', 'a', 'b', 'c', 'c/1', 'c/10', 'c/2', 'd', '\uFFFF', '\u{10000}']);
        expect(await keysOf('c/', 'c0')).toEqual(['c/1', 'c/10', 'c/2']);
        expect(await keysOf('c/10', 'd')).toEqual(['c/10', 'c/2']); // gte is inclusive, lt exclusive
        expect(await keysOf('c/100')).toEqual(['c/2', 'd', '\uFFFF', '\u{10000}']);
        expect(await keysOf('\uFFFF')).toEqual(['\uFFFF', '\u{10000}']);
        expect(await keysOf('x', 'y')).toEqual([]);
        expect(await keysOf('e')).toEqual(['\uFFFF', '\u{10000}']);
        const empty = await storage.scan({ snapshot: 1, space: 'gamma', gte: '', maxBytes: 1000 });
        expect(scanDump(empty)).toEqual({ entries: [], next: undefined });
        storage.releaseSnapshot(1);
      });

      it('stops once maxBytes is reached, returning at least one entry, next at the first key not returned', async () => {
        // Ten entries of 10 bytes each (2-byte key + 8-byte value).
        const ks = Array.from({ length: 10 }, (_, i) => `k${i}`);
        await storage.write([...ks.map((k) => put('alpha', k, new Uint8Array(8))), { op: 'snapshot', id: 3 }], {
          sync: true,
        });
        const page = async (gte: string, maxBytes: number, lt?: string) => {
          const r = await storage.scan({ snapshot: 3, space: 'alpha', gte, maxBytes, ...(lt === undefined ? {} : { lt }) });
          return { keys: r.entries.map(([k]) => k), next: r.next };
        };
        expect(await page('', 25)).toEqual({ keys: ['k0', 'k1', 'k2'], next: 'k3' }); // 30 bytes: stops past 25
        expect(await page('', 30)).toEqual({ keys: ['k0', 'k1', 'k2'], next: 'k3' }); // exactly 30: stops
        expect(await page('', 31)).toEqual({ keys: ['k0', 'k1', 'k2', 'k3'], next: 'k4' });
        expect(await page('k3', 1)).toEqual({ keys: ['k3'], next: 'k4' }); // smaller than one entry: one entry
        expect(await page('k8', 20)).toEqual({ keys: ['k8', 'k9'], next: undefined }); // exhausted exactly at the limit
        expect(await page('k8', 1000)).toEqual({ keys: ['k8', 'k9'], next: undefined });
        expect(await page('k2', 20, 'k4')).toEqual({ keys: ['k2', 'k3'], next: undefined }); // lt ends the range
        expect(await page('k2', 10, 'k4')).toEqual({ keys: ['k2'], next: 'k3' });
        const all = await scanAll(storage, { snapshot: 3, space: 'alpha', gte: '', maxBytes: 20 });
        expect(all).toEqual({ keys: ks, pages: 5 });
        storage.releaseSnapshot(3);
      });

      it('counts value bytes too: one large value fills a page alone', async () => {
        await storage.write(
          [put('alpha', 'a', new Uint8Array(100)), put('alpha', 'b', bytes(1)), { op: 'snapshot', id: 1 }],
          { sync: true },
        );
        const r = await storage.scan({ snapshot: 1, space: 'alpha', gte: '', maxBytes: 50 });
        expect(r.entries.map(([k]) => k)).toEqual(['a']);
        expect(r.next).toBe('b');
        storage.releaseSnapshot(1);
      });

      it('hands out copies: mutating a scanned value changes nothing', async () => {
        await storage.write([put('alpha', 'k', bytes(1, 2)), { op: 'snapshot', id: 1 }], { sync: true });
        const first = await storage.scan({ snapshot: 1, space: 'alpha', gte: '', maxBytes: 100 });
        const value = first.entries[0]?.[1];
        expect(value && Object.getPrototypeOf(value)).toBe(Uint8Array.prototype);
        value?.fill(9);
        const again = await storage.scan({ snapshot: 1, space: 'alpha', gte: '', maxBytes: 100 });
        expect(scanDump(again).entries).toEqual([['k', [1, 2]]]);
        expect(storage.getSync('alpha', 'k')).toEqual(bytes(1, 2));
        storage.releaseSnapshot(1);
      });

      it('rejects a scan of an unknown or released snapshot; releasing an unknown id is ignored', async () => {
        await storage.write([put('alpha', 'k', bytes(1)), { op: 'snapshot', id: 5 }], { sync: true });
        await expect(storage.scan({ snapshot: 6, space: 'alpha', gte: '', maxBytes: 10 })).rejects.toThrow(
          /unknown snapshot 6/,
        );
        expect((await storage.scan({ snapshot: 5, space: 'alpha', gte: '', maxBytes: 10 })).entries).toHaveLength(1);
        storage.releaseSnapshot(5);
        storage.releaseSnapshot(5);
        storage.releaseSnapshot(99);
        await expect(storage.scan({ snapshot: 5, space: 'alpha', gte: '', maxBytes: 10 })).rejects.toThrow(
          /unknown snapshot 5/,
        );
      });

      it('rejects a scan of an unknown space', async () => {
        await storage.write([{ op: 'snapshot', id: 1 }], { sync: false });
        await expect(storage.scan({ snapshot: 1, space: 'nope', gte: '', maxBytes: 10 })).rejects.toThrow(
          /unknown storage space "nope"/,
        );
        storage.releaseSnapshot(1);
      });

      it('a snapshot does not survive close and reopen', async () => {
        await storage.write([put('alpha', 'k', bytes(1)), { op: 'snapshot', id: 1 }], { sync: true });
        await storage.close();
        const again = await fx.reopen();
        await expect(again.scan({ snapshot: 1, space: 'alpha', gte: '', maxBytes: 10 })).rejects.toThrow(
          /unknown snapshot 1/,
        );
        expect(again.getSync('alpha', 'k')).toEqual(bytes(1));
      });
    });

    it('keeps synced and unsynced writes across a clean close and reopen', async () => {
      await storage.write([put('alpha', 'synced', bytes(1)), put('beta', 'gone', bytes(0))], { sync: true });
      await storage.write([put('gamma', 'unsynced', bytes(2)), del('beta', 'gone')], { sync: false });
      await storage.close();
      const again = await fx.reopen();
      expect(dump(await loadAll(again))).toEqual([
        ['alpha', [['synced', [1]]]],
        ['gamma', [['unsynced', [2]]]],
      ]);
      await again.write([put('alpha', 'after', bytes(3))], { sync: true });
      expect([...space(await loadAll(again), 'alpha').keys()]).toEqual(['after', 'synced']);
    });

    it('rejects writes and loads after close; close is idempotent', async () => {
      await storage.close();
      await storage.close();
      await expect(storage.write([put('alpha', 'k', bytes(1))], { sync: true })).rejects.toThrow();
      await expect(loadAll(storage)).rejects.toThrow();
      expect(() => storage.getSync('alpha', 'k')).toThrow();
      const again = await fx.reopen();
      expect((await loadAll(again)).size).toBe(0);
    });
  });
}
