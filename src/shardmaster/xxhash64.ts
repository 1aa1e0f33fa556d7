// xxHash64 (seed 0), the one hash of the shard master: key -> shard
// (key-shard.ts) and the ring positions of hash-ring.ts. Servers and the SDK
// must agree on it forever, so it is pinned by known values in the tests.
//
// xxhash-wasm instantiates its WebAssembly module asynchronously; once loaded,
// hashing is synchronous, which the deterministic protocol code needs. The
// module is loaded once per process.
import xxhash from 'xxhash-wasm';

/** xxHash64 with seed 0 of the UTF-8 encoding of `text`, as an unsigned 64-bit integer. */
export type XxHash64 = (text: string) => bigint;

let loading: Promise<XxHash64> | undefined;

export function loadXxHash64(): Promise<XxHash64> {
  loading ??= xxhash().then(
    (api) => (text: string) => api.h64(text),
    (err: unknown) => {
      loading = undefined; // let a later call try again rather than fail forever
      throw err;
    },
  );
  return loading;
}
