// Snappy decompression (the raw format, github.com/google/snappy
// format_description.txt), for LevelDB's compressed index blocks: checking a
// table ourselves (leveldb-table-check.ts) means reading its index, and
// LevelDB compresses that block like any other. Input is untrusted (a file
// that may be damaged): every length and offset is bounds-checked, and a bad
// one gives undefined, never a throw or an over-read.

/** The uncompressed bytes, or undefined if `input` is not valid snappy. */
export function snappyUncompress(input: Uint8Array): Uint8Array | undefined {
  const header = readVarint32(input, 0);
  if (header === undefined) return undefined;
  const out = new Uint8Array(header.value);
  let pos = header.next;
  let o = 0;
  while (pos < input.length) {
    const tag = input[pos++] ?? 0;
    let length: number;
    let offset: number;
    switch (tag & 3) {
      case 0: {
        // Literal: length-1 in the tag's top 6 bits, or in the 1-4 bytes after it (tags 60-63).
        length = tag >>> 2;
        if (length >= 60) {
          const extra = length - 59;
          if (pos + extra > input.length) return undefined;
          length = 0;
          for (let i = 0; i < extra; i++) length |= (input[pos + i] ?? 0) << (8 * i);
          length >>>= 0;
          pos += extra;
        }
        length += 1;
        if (pos + length > input.length || o + length > out.length) return undefined;
        out.set(input.subarray(pos, pos + length), o);
        pos += length;
        o += length;
        continue;
      }
      case 1:
        length = ((tag >>> 2) & 7) + 4;
        if (pos + 1 > input.length) return undefined;
        offset = ((tag >>> 5) << 8) | (input[pos] ?? 0);
        pos += 1;
        break;
      case 2:
        length = (tag >>> 2) + 1;
        if (pos + 2 > input.length) return undefined;
        offset = (input[pos] ?? 0) | ((input[pos + 1] ?? 0) << 8);
        pos += 2;
        break;
      default:
        length = (tag >>> 2) + 1;
        if (pos + 4 > input.length) return undefined;
        offset = ((input[pos] ?? 0) | ((input[pos + 1] ?? 0) << 8) | ((input[pos + 2] ?? 0) << 16) | ((input[pos + 3] ?? 0) << 24)) >>> 0;
        pos += 4;
    }
    // A copy: `length` bytes from `offset` back in the output; it may overlap what it writes.
    if (offset === 0 || offset > o || o + length > out.length) return undefined;
    for (let i = 0; i < length; i++, o++) out[o] = out[o - offset] ?? 0;
  }
  return o === out.length ? out : undefined;
}

/** A little-endian base-128 varint of at most 32 bits at `pos`, and where the next field starts. */
export function readVarint32(bytes: Uint8Array, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let shift = 0; shift <= 28; shift += 7) {
    if (pos >= bytes.length) return undefined;
    const b = bytes[pos++] ?? 0;
    value |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { value: value >>> 0, next: pos };
  }
  return undefined;
}
