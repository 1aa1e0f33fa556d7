// Checks every block checksum of a LevelDB table file (*.ldb), as LevelDB
// itself would with `paranoid_checks` and `verify_checksums`, which
// classic-level 3 does not let us turn on. Without it a damaged key, index or
// filter block can make LevelDB skip records or answer "absent" with no error
// (measured: about one single-byte flip in ten), which no value checksum can
// see. Format: LevelDB 1.20 doc/table_format.md — blocks, each followed by a
// 1-byte compression type and a masked CRC-32C of the block and that byte;
// then a 48-byte footer holding the handles (offset, size) of the metaindex
// and index blocks and a magic number. The index block lists the data blocks;
// the metaindex block lists the filter block.
import { crc32c, unmaskCrc } from './crc32c.js';
import { readVarint32, snappyUncompress } from './snappy.js';

const FOOTER_BYTES = 48;
const MAGIC = [0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb]; // 0xdb4775248b80fb57, little-endian
const TRAILER_BYTES = 5;
const NO_COMPRESSION = 0;
const SNAPPY = 1;

interface Handle {
  readonly offset: number;
  readonly size: number;
}

/** What is wrong with the table in `bytes` (the first damage found), or undefined if every block checks out. */
export function tableDamage(bytes: Uint8Array): string | undefined {
  if (bytes.length < FOOTER_BYTES) return `${bytes.length} bytes, shorter than a table footer`;
  const footer = bytes.length - FOOTER_BYTES;
  if (MAGIC.some((b, i) => bytes[footer + 40 + i] !== b)) return 'no table magic number at its end';
  const metaindex = readHandle(bytes, footer);
  const index = metaindex === undefined ? undefined : readHandle(bytes, metaindex.next);
  if (metaindex === undefined || index === undefined) return 'bad block handle in the footer';

  for (const [name, handle] of [['index', index.handle] as const, ['metaindex', metaindex.handle] as const]) {
    const block = readBlock(bytes, handle, footer);
    if (typeof block === 'string') return `${name} block: ${block}`;
    const values = blockValues(block);
    if (typeof values === 'string') return `${name} block: ${values}`;
    // Each value is the handle of a data block (index) or of a filter block (metaindex).
    for (const value of values) {
      const h = readHandle(value, 0);
      if (h === undefined) return `${name} block: bad block handle`;
      const listed = readBlock(bytes, h.handle, footer);
      if (typeof listed === 'string') return `block listed by the ${name} block: ${listed}`;
    }
  }
  return undefined;
}

/** A block's contents (uncompressed) after checking its checksum, or what is wrong with it. */
function readBlock(bytes: Uint8Array, h: Handle, end: number): Uint8Array | string {
  const where = `block at offset ${h.offset} (${h.size} bytes)`;
  if (h.offset + h.size + TRAILER_BYTES > end) return `${where} runs past the blocks' end (${end})`;
  const type = bytes[h.offset + h.size];
  const stored = readU32(bytes, h.offset + h.size + 1);
  if (crc32c(bytes, h.offset, h.offset + h.size + 1) !== unmaskCrc(stored)) return `${where}: checksum mismatch`;
  const contents = bytes.subarray(h.offset, h.offset + h.size);
  if (type === NO_COMPRESSION) return contents;
  if (type !== SNAPPY) return `${where}: unknown compression type ${type}`;
  return snappyUncompress(contents) ?? `${where}: does not decompress`;
}

/** The values of a block's entries (keys are prefix-compressed and not needed), or what is wrong with it. */
function blockValues(block: Uint8Array): Uint8Array[] | string {
  if (block.length < 4) return 'too short for its restart count';
  const restarts = readU32(block, block.length - 4);
  const entriesEnd = block.length - 4 * (restarts + 1);
  if (restarts === 0 || entriesEnd < 0) return `bad restart count ${restarts}`;
  const values: Uint8Array[] = [];
  let pos = 0;
  while (pos < entriesEnd) {
    const shared = readVarint32(block, pos);
    const unshared = shared === undefined ? undefined : readVarint32(block, shared.next);
    const length = unshared === undefined ? undefined : readVarint32(block, unshared.next);
    if (unshared === undefined || length === undefined) return `bad entry at ${pos}`;
    const valueStart = length.next + unshared.value;
    pos = valueStart + length.value;
    if (pos > entriesEnd) return `entry at ${pos} runs past the entries' end`;
    values.push(block.subarray(valueStart, pos));
  }
  return values;
}

/** A block handle (two varint64s) at `pos`; undefined past 2^49 bytes (no table is that large). */
function readHandle(bytes: Uint8Array, pos: number): { handle: Handle; next: number } | undefined {
  const offset = readVarint64(bytes, pos);
  const size = offset === undefined ? undefined : readVarint64(bytes, offset.next);
  if (offset === undefined || size === undefined) return undefined;
  return { handle: { offset: offset.value, size: size.value }, next: size.next };
}

function readVarint64(bytes: Uint8Array, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let shift = 0; shift < 49; shift += 7) {
    if (pos >= bytes.length) return undefined;
    const b = bytes[pos++] ?? 0;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return { value, next: pos };
  }
  return undefined;
}

function readU32(bytes: Uint8Array, pos: number): number {
  return ((bytes[pos] ?? 0) | ((bytes[pos + 1] ?? 0) << 8) | ((bytes[pos + 2] ?? 0) << 16) | ((bytes[pos + 3] ?? 0) << 24)) >>> 0;
}
