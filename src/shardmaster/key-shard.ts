// key -> shard (DESIGN.md 2.3): xxHash64 of the key's UTF-8 bytes, modulo the
// shard count, in 64-bit integer arithmetic. The SDK routes with it and the
// servers check ownership with it, so the two must agree forever: a change
// here moves every key of every cluster (test/key-shard.test.ts pins values).
//
// A key holding a lone surrogate has no UTF-8 encoding; the hash sees it with
// U+FFFD in its place (TextEncoder's rule). Such keys are refused before they
// are routed (src/kv/limits.ts), so no two stored keys collide that way.
import { assert } from '../core/assert.js';
import { type ShardId, shardId } from '../core/ids.js';
import { shardCountProblem } from './config.js';
import { loadXxHash64 } from './xxhash64.js';

export interface KeySharder {
  readonly shards: number;
  shardOf(key: string): ShardId;
}

/** A sharder for `shards` shards (1..MAX_SHARDS; check an outside value with shardCountProblem first). */
export async function loadKeySharder(shards: number): Promise<KeySharder> {
  const problem = shardCountProblem(shards);
  assert(problem === undefined, problem);
  const hash = await loadXxHash64();
  const modulus = BigInt(shards);
  return { shards, shardOf: (key) => shardId(Number(hash(key) % modulus)) };
}
