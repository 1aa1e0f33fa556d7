// key -> shard (src/shardmaster/key-shard.ts). The SDK and every server must
// map keys to shards the same way forever, so the values are pinned: a change
// of hash function, seed, encoding or arithmetic fails here.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import xxhash from 'xxhash-wasm';
import { loadKeySharder } from '../src/shardmaster/key-shard.js';
import { loadXxHash64 } from '../src/shardmaster/xxhash64.js';

describe('xxHash64', () => {
  it('is XXH64 with seed 0: the reference values of the xxHash specification', async () => {
    const h = await loadXxHash64();
    expect(h('')).toBe(0xef46db3751d8e999n);
    expect(h('a')).toBe(0xd24ec4f1a98c6e5bn);
    expect(h('abc')).toBe(0x44bc2cf5ad770999n);
  });

  it('hashes the UTF-8 bytes of the text', async () => {
    const h = await loadXxHash64();
    expect(h('héllo')).toBe(0x3bd06310388ebbe4n);
    expect(h('🙂')).toBe(0x08204c75e29551d3n);
  });

  it('is loaded once per process', async () => {
    expect(await loadXxHash64()).toBe(await loadXxHash64());
  });
});

describe('key -> shard', () => {
  // [key, shard of 64, of 4096, of 10]. Mod 10 keeps the low bits honest:
  // doing it in floating point gives 6, 0, 0, 2, 2, 8, 8, 0, 0 instead.
  const pinned: Array<[string, number, number, number]> = [
    ['a', 27, 3675, 5],
    ['abc', 25, 2457, 9],
    ['user:1', 51, 243, 3],
    ['user:2', 10, 1290, 6],
    ['hello world', 40, 2408, 2],
    ['héllo', 36, 3044, 0],
    ['日本語', 33, 1505, 9],
    ['🙂', 19, 467, 5],
    ['x'.repeat(1000), 33, 225, 5],
  ];

  it('maps fixed keys to fixed shards', async () => {
    const [s64, s4096, s10] = await Promise.all([loadKeySharder(64), loadKeySharder(4096), loadKeySharder(10)]);
    for (const [key, at64, at4096, at10] of pinned) {
      expect([s64.shardOf(key), s4096.shardOf(key), s10.shardOf(key)], key.slice(0, 20)).toEqual([at64, at4096, at10]);
    }
  });

  it('is xxHash64 of the UTF-8 bytes modulo the shard count, for any key and count', async () => {
    // The reference hashes bytes encoded here, through the library's other entry point.
    const api = await xxhash();
    const enc = new TextEncoder();
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 40 }), fc.integer({ min: 1, max: 4096 }), async (key, shards) => {
        const sharder = await loadKeySharder(shards);
        const expected = Number(api.h64Raw(enc.encode(key)) % BigInt(shards));
        const shard = sharder.shardOf(key);
        expect(shard).toBe(expected);
        expect(shard >= 0 && shard < shards).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a shard count outside 1..4096 as a bug of the caller', async () => {
    await expect(loadKeySharder(0)).rejects.toThrow(/shard count/);
    await expect(loadKeySharder(4097)).rejects.toThrow(/shard count/);
    await expect(loadKeySharder(1.5)).rejects.toThrow(/shard count/);
  });
});
