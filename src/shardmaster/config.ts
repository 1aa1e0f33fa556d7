// A shard-master configuration (DESIGN.md 2.3): which group owns each shard,
// and which servers make up each group. Configs are numbered from 0; config 0
// has no groups and every shard unassigned. The shard count is fixed when the
// cluster is created.
//
// Invariants (checkConfig):
// - the shard count is in 1..MAX_SHARDS; group ids in 1..MAX_GROUP_ID; at most
//   MAX_GROUPS groups, each with 1..MAX_SERVERS_PER_GROUP distinct node ids;
// - with no group, every shard is unassigned and none is pinned; with any
//   group, every shard is owned by a group of the config;
// - config 0 has no group;
// - a config with no pin is balanced: per-group shard counts differ by at most
//   1 (only a move unbalances, and every move pins its shard).
//
// Maps and sets here are looked up, never iterated in insertion order where
// the order could reach a result: `sortedGroupIds` is the one iteration order.
import { type ConfigNum, configNum, type GroupId, type NodeId, parseNodeId, type ShardId } from '../core/ids.js';

export const DEFAULT_SHARDS = 64;
export const MAX_SHARDS = 4096;
/** Group ids are small operator-chosen numbers; 0 is never a group. */
export const MAX_GROUP_ID = 65_535;
/** Bounds the work of a rebalance and the size of a stored config. */
export const MAX_GROUPS = 256;
export const MAX_SERVERS_PER_GROUP = 16;

export interface ShardConfig {
  readonly num: ConfigNum;
  /** Owner of each shard, indexed by shard; undefined only while no group exists. Its length is the shard count. */
  readonly shards: readonly (GroupId | undefined)[];
  /** Every group of the config and its servers (node ids of its replicas). */
  readonly groups: ReadonlyMap<GroupId, readonly NodeId[]>;
  /** Shards placed by a move since the last join or leave. */
  readonly pinned: ReadonlySet<ShardId>;
}

/** Config 0: no group, every shard unassigned. */
export function initialConfig(shards: number): ShardConfig {
  return {
    num: configNum(0),
    shards: new Array<GroupId | undefined>(shards).fill(undefined),
    groups: new Map(),
    pinned: new Set(),
  };
}

/** Why `n` cannot be a shard count, or undefined if it can. */
export function shardCountProblem(n: number): string | undefined {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_SHARDS) return `the shard count must be 1..${MAX_SHARDS}, not ${n}`;
  return undefined;
}

/** Why `n` cannot be a group id, or undefined if it can. */
export function groupIdProblem(n: number): string | undefined {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_GROUP_ID) return `a group id must be 1..${MAX_GROUP_ID}, not ${n}`;
  return undefined;
}

/** Why `servers` cannot be a group's servers, or undefined if they can. */
export function serversProblem(servers: readonly string[]): string | undefined {
  if (servers.length === 0) return 'a group needs at least one server';
  if (servers.length > MAX_SERVERS_PER_GROUP) {
    return `a group has at most ${MAX_SERVERS_PER_GROUP} servers, not ${servers.length}`;
  }
  const seen = new Set<string>();
  for (const s of servers) {
    if (parseNodeId(s) === undefined) return `server ${JSON.stringify(s.slice(0, 80))} is not a node id`;
    if (seen.has(s)) return `server ${s} is listed twice`;
    seen.add(s);
  }
  return undefined;
}

/** Group ids in ascending order: the one order in which configs are walked and encoded. */
export function sortedGroupIds(config: Pick<ShardConfig, 'groups'>): GroupId[] {
  return [...config.groups.keys()].sort((a, b) => a - b);
}

/** Shards owned by each group of the config (0 for a group that owns none). */
export function shardCounts(config: ShardConfig): Map<GroupId, number> {
  const counts = new Map<GroupId, number>();
  for (const g of sortedGroupIds(config)) counts.set(g, 0);
  for (const owner of config.shards) {
    if (owner !== undefined) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  }
  return counts;
}

/** The first invariant `config` breaks, or undefined if it keeps them all. */
export function checkConfig(config: ShardConfig): string | undefined {
  if (!Number.isSafeInteger(config.num) || config.num < 0) return `config number ${config.num} is not a natural number`;
  const shards = config.shards.length;
  const count = shardCountProblem(shards);
  if (count !== undefined) return count;
  if (config.groups.size > MAX_GROUPS) return `${config.groups.size} groups; the most is ${MAX_GROUPS}`;
  if (config.num === 0 && config.groups.size > 0) return 'config 0 has groups';
  for (const g of sortedGroupIds(config)) {
    const problem = groupIdProblem(g) ?? serversProblem(config.groups.get(g) ?? []);
    if (problem !== undefined) return `group ${g}: ${problem}`;
  }
  return ownersProblem(config) ?? pinsProblem(config) ?? balanceProblem(config);
}

function ownersProblem(config: ShardConfig): string | undefined {
  const anyGroup = config.groups.size > 0;
  for (let s = 0; s < config.shards.length; s++) {
    const owner = config.shards[s];
    if (!anyGroup && owner !== undefined) return `shard ${s} is owned by group ${owner}, but no group exists`;
    if (anyGroup && owner === undefined) return `shard ${s} is unassigned, but groups exist`;
    if (owner !== undefined && !config.groups.has(owner)) return `shard ${s} is owned by group ${owner}, not in the config`;
  }
  return undefined;
}

function pinsProblem(config: ShardConfig): string | undefined {
  for (const s of config.pinned) {
    if (!Number.isSafeInteger(s) || s < 0 || s >= config.shards.length) return `pinned shard ${s} is out of range`;
    if (config.shards[s] === undefined) return `pinned shard ${s} is unassigned`;
  }
  return undefined;
}

function balanceProblem(config: ShardConfig): string | undefined {
  if (config.pinned.size > 0 || config.groups.size === 0) return undefined;
  const counts = [...shardCounts(config).values()];
  const spread = Math.max(...counts) - Math.min(...counts);
  if (spread > 1) return `no shard is pinned, yet group shard counts differ by ${spread}`;
  return undefined;
}
