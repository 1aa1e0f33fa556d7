// CRC-32C (Castagnoli), the checksum LevelDB puts on every table block and
// log record, and LevelDB's "mask" of it (util/crc32c.h). Node 20 has only
// CRC-32 (zlib.crc32), so this is a table-driven implementation (slicing by
// 8, a few hundred MB/s), used to check LevelDB's files ourselves
// (leveldb-table-check.ts): classic-level never asks LevelDB to.

const POLY = 0x82f63b78; // reversed Castagnoli polynomial
const TABLE = makeTable();

function makeTable(): Int32Array {
  const t = new Int32Array(256 * 8);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[i] = c;
  }
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 8; s++) {
      const prev = t[(s - 1) * 256 + i] ?? 0;
      t[s * 256 + i] = (prev >>> 8) ^ (t[prev & 0xff] ?? 0);
    }
  }
  return t;
}

/** CRC-32C of bytes[start, end). */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  const t = TABLE;
  let c = -1;
  let i = start;
  // Eight bytes a round: one lookup per byte in its own table, no dependency between them.
  for (; i + 8 <= end; i += 8) {
    c ^= (bytes[i] ?? 0) | ((bytes[i + 1] ?? 0) << 8) | ((bytes[i + 2] ?? 0) << 16) | ((bytes[i + 3] ?? 0) << 24);
    c =
      (t[1792 + (c & 0xff)] ?? 0) ^
      (t[1536 + ((c >>> 8) & 0xff)] ?? 0) ^
      (t[1280 + ((c >>> 16) & 0xff)] ?? 0) ^
      (t[1024 + (c >>> 24)] ?? 0) ^
      (t[768 + (bytes[i + 4] ?? 0)] ?? 0) ^
      (t[512 + (bytes[i + 5] ?? 0)] ?? 0) ^
      (t[256 + (bytes[i + 6] ?? 0)] ?? 0) ^
      (t[bytes[i + 7] ?? 0] ?? 0);
  }
  for (; i < end; i++) c = (t[(c ^ (bytes[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

const MASK_DELTA = 0xa282ead8;

/** The CRC LevelDB stored as `masked` (it masks CRCs of data that may itself hold CRCs). */
export function unmaskCrc(masked: number): number {
  const rot = (masked - MASK_DELTA) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}
