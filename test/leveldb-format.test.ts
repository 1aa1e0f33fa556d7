// The pieces that read LevelDB's files ourselves (the table check): CRC-32C,
// snappy decompression and the table walk. Their input is a file that may be
// damaged, so beyond known answers: any bytes give an answer, never a throw.
// (Real tables, written by LevelDB, are checked in storage-corruption.test.ts.)
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, unmaskCrc } from '../src/server/crc32c.js';
import { tableDamage } from '../src/server/leveldb-table-check.js';
import { snappyUncompress } from '../src/server/snappy.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('crc32c', () => {
  it('gives the standard check value, over any range', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32c(ascii('xx123456789yy'), 2, 11)).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  });

  it('matches a bit-at-a-time CRC-32C on any input (the 8-byte rounds and the tail)', () => {
    const slow = (b: Uint8Array): number => {
      let c = 0xffffffff;
      for (const x of b) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return (c ^ 0xffffffff) >>> 0;
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (b) => crc32c(b) === slow(b)));
  });

  it("undoes LevelDB's mask", () => {
    const mask = (c: number): number => (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
    fc.assert(fc.property(fc.nat({ max: 0xffffffff }), (c) => unmaskCrc(mask(c)) === c));
  });
});

describe('snappyUncompress', () => {
  it('reads literals and overlapping copies', () => {
    // Length 9; literal "ab" (tag 1<<2); copy of 7 bytes from 2 back (1-byte offset: tag ((7-4)<<2)|1).
    expect(snappyUncompress(new Uint8Array([9, 0x04, 0x61, 0x62, (3 << 2) | 1, 2]))).toEqual(ascii('ababababa'));
  });

  it('refuses what is not snappy instead of reading past its input', () => {
    expect(snappyUncompress(new Uint8Array([5, 0x04, 0x61]))).toBeUndefined(); // literal runs past the end
    expect(snappyUncompress(new Uint8Array([4, (0 << 2) | 1, 9]))).toBeUndefined(); // copy before the start
    expect(snappyUncompress(new Uint8Array([9, 0x04, 0x61, 0x62]))).toBeUndefined(); // shorter than announced
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => snappyUncompress(b) === undefined || snappyUncompress(b) instanceof Uint8Array));
  });
});

describe('tableDamage', () => {
  it('answers for any bytes, never throws', () => {
    expect(tableDamage(new Uint8Array(10))).toMatch(/shorter than a table footer/);
    expect(tableDamage(new Uint8Array(100))).toMatch(/no table magic number/);
    fc.assert(fc.property(fc.uint8Array({ minLength: 48, maxLength: 300 }), (b) => typeof tableDamage(b) === 'string'));
    // With the magic number in place, so that the footer's handles and the blocks they point at are read.
    const magic = [0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb];
    const withMagic = fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ minLength: 40, maxLength: 40 }));
    fc.assert(fc.property(withMagic, ([body, handles]) => typeof tableDamage(new Uint8Array([...body, ...handles, ...magic])) === 'string'));
  });
});
