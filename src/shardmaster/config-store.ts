// Where the shard master keeps its configs (DESIGN.md 3: state on disk, not in
// the heap). Each config is stored once under its own key, `c/<num>` with num
// zero-padded to 16 digits (so key order is number order), and `latest` holds
// the latest number in the same 16 digits. Config 0 is never stored: it is
// implied by the shard count, and a fresh store has no `latest`.
//
// Every config is checked before it is written (our invariant: an assertion)
// and again after it is read (the disk's word: a ShardMasterStorageError,
// which means the store is damaged or belongs to a cluster of another shard
// count; the replica must stop rather than serve it).
import type { StateReader, StateStore } from '../core/application.js';
import { assert } from '../core/assert.js';
import { type ConfigNum, configNum } from '../core/ids.js';
import { WireError } from '../rpc/codec.js';
import { decodeShardConfig, encodeShardConfig } from './codec.js';
import { checkConfig, initialConfig, type ShardConfig } from './config.js';

export const LATEST_KEY = 'latest';
const NUM_DIGITS = 16; // Number.MAX_SAFE_INTEGER has 16
const NUM_TEXT = /^[0-9]{16}$/;

export class ShardMasterStorageError extends Error {
  override readonly name = 'ShardMasterStorageError';
}

export function configKey(num: ConfigNum): string {
  return `c/${padded(num)}`;
}

/** The latest config number: 0 on a fresh store. */
export function readLatestNum(store: StateReader): ConfigNum {
  const bytes = store.get(LATEST_KEY);
  if (bytes === undefined) return configNum(0);
  const text = new TextDecoder().decode(bytes);
  const num = NUM_TEXT.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(num) || num < 1) {
    const shown = JSON.stringify(text.slice(0, 40));
    throw new ShardMasterStorageError(`shard master store: "${LATEST_KEY}" holds ${shown}, not a config number`);
  }
  return configNum(num);
}

/** Config `num` (at most the latest) of a cluster of `shards` shards. */
export function readConfig(store: StateReader, num: ConfigNum, shards: number): ShardConfig {
  if (num === 0) return initialConfig(shards);
  const key = configKey(num);
  const bytes = store.get(key);
  const fail = (what: string) => new ShardMasterStorageError(`shard master store: ${key} ${what}`);
  if (bytes === undefined) throw fail('is missing');
  let config: ShardConfig;
  try {
    config = decodeShardConfig(bytes);
  } catch (e) {
    if (e instanceof WireError) throw fail(`is damaged: ${e.message}`);
    throw e;
  }
  if (config.num !== num) throw fail(`holds config ${config.num}`);
  if (config.shards.length !== shards) {
    throw fail(`holds a config of ${config.shards.length} shards, but this shard master was started with ${shards}`);
  }
  return config;
}

/** Stores `config` as the new latest: the caller made it from the latest, so its number is one more. */
export function writeConfig(store: StateStore, config: ShardConfig): void {
  const problem = checkConfig(config);
  assert(problem === undefined, `writing a bad config ${config.num}: ${problem}`);
  assert(config.num === readLatestNum(store) + 1, `config ${config.num} does not follow the latest`);
  store.put(configKey(config.num), encodeShardConfig(config));
  store.put(LATEST_KEY, new TextEncoder().encode(padded(config.num)));
}

function padded(num: ConfigNum): string {
  return String(num).padStart(NUM_DIGITS, '0');
}
