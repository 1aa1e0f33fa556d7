// The checksum every LevelDB value carries (issue 7, verified storage).
// classic-level 3 exposes neither LevelDB's `paranoid_checks` nor
// `verify_checksums`, so LevelDB never checks its table blocks on a read: a
// flipped byte reaches us as a different value. Each stored value is
//
//   [CRC-32 of (space, key, value): 4 bytes, little-endian][value]
//
// The CRC covers the space and key too, so a value that turns up under
// another key (a damaged key in a table block) fails as surely as a damaged
// value. CRC-32 (zlib.crc32, native) rather than CRC-32C: Node 20 has no
// native CRC-32C, and both catch every burst of up to 32 bits.
import { crc32 } from 'node:zlib';

export const CHECKSUM_BYTES = 4;

/** The CRC state after a space's name: computed once per space, it starts every value's checksum. */
export function spaceSeed(space: string): number {
  // The NUL ends the name, so ("ab", "c") and ("a", "bc") differ.
  return crc32(`${space}\u0000`);
}

function checksum(seed: number, key: string, value: Uint8Array): number {
  return crc32(value, crc32(key, seed));
}

/** The stored form of `value` under (space, key): a new buffer, so LevelDB never sees the caller's. */
export function seal(seed: number, key: string, value: Uint8Array): Uint8Array {
  const sealed = new Uint8Array(CHECKSUM_BYTES + value.length);
  new DataView(sealed.buffer).setUint32(0, checksum(seed, key, value), true);
  sealed.set(value, CHECKSUM_BYTES);
  return sealed;
}

/**
 * The value stored as `stored` under (space, key), as a fresh copy the caller
 * owns; undefined when the checksum does not match (or the bytes are too
 * short to hold one).
 */
export function unseal(seed: number, key: string, stored: Uint8Array): Uint8Array | undefined {
  if (stored.length < CHECKSUM_BYTES) return undefined;
  const expected = new DataView(stored.buffer, stored.byteOffset, stored.byteLength).getUint32(0, true);
  const value = stored.subarray(CHECKSUM_BYTES);
  // A plain copy: LevelDB hands out Buffers, whose slice() is a view (maybe over a shared pool).
  return checksum(seed, key, value) === expected ? new Uint8Array(value) : undefined;
}
