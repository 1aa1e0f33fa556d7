// shard -> group (DESIGN.md 2.3): consistent hashing with bounded loads
// (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads",
// SODA 2018), made to move as few shards as balance allows.
//
// The ring is the 64-bit integers. Shard s sits at xxHash64("shard:<s>"); group
// g has VNODES_PER_GROUP virtual nodes at xxHash64("group:<g>:vnode:<i>"). A
// shard prefers the groups in the order a clockwise walk from its point meets
// their virtual nodes. All of it is integer arithmetic on bigints.
//
// join and leave clear every pin, then rebalance from the current assignment:
// 1. targets: with n groups and S shards each group gets floor(S/n), and the
//    S mod n groups that hold the most shards now (ties: lower id) one more;
// 2. release: each group above its target gives up its excess, choosing the
//    shards nearest (clockwise) to a virtual node of a group below its target,
//    unpinned shards before pinned ones (a recent manual placement stays when
//    it can); the shards of a leaving group, or unassigned ones, are released;
// 3. place: in shard order, each released shard goes to the first group below
//    its target that a clockwise walk from the shard meets.
// Fewest moves: every balanced assignment over the new groups has counts that
// are some such target vector, and must move at least sum(max(0, count -
// target)) shards (plus the released leaving/unassigned ones). Giving the
// larger targets to the largest counts minimises that sum, and each released
// shard moves once, so no balanced assignment moves fewer shards. From a
// balanced, unpinned config this means: a join moves shards only into the new
// group, a leave moves only the leaving group's shards.
//
// move(shard, g) reassigns one shard and pins it; nothing else moves.
//
// Deterministic: no float, no randomness, maps walked in sorted order, ties
// broken by group id then shard id. Same inputs, same config, on every replica.
import { assert, AssertionError } from '../core/assert.js';
import { configNum, type GroupId, type NodeId, type ShardId, shardId } from '../core/ids.js';
import {
  checkConfig,
  groupIdProblem,
  MAX_GROUPS,
  serversProblem,
  type ShardConfig,
  shardCountProblem,
  shardCounts,
  sortedGroupIds,
} from './config.js';
import type { XxHash64 } from './xxhash64.js';

/** Enough for an even spread of preferences; the cost is this many hashes per receiving group per rebalance. */
export const VNODES_PER_GROUP = 64;
const RING_SIZE = 1n << 64n;

interface VirtualNode {
  readonly point: bigint;
  readonly group: GroupId;
}

export class HashRing {
  private readonly shardPoints: readonly bigint[];

  constructor(
    private readonly hash: XxHash64,
    readonly shards: number,
  ) {
    const problem = shardCountProblem(shards);
    assert(problem === undefined, problem);
    this.shardPoints = Array.from({ length: shards }, (_, s) => hash(`shard:${s}`));
  }

  /** Config num+1 with `group` added and the shards rebalanced. The caller has checked the group is new and valid. */
  join(config: ShardConfig, group: GroupId, servers: readonly NodeId[]): ShardConfig {
    this.checkShape(config);
    assert(!config.groups.has(group), `group ${group} joins twice`);
    assert(config.groups.size < MAX_GROUPS, 'too many groups');
    const problem = groupIdProblem(group) ?? serversProblem(servers);
    assert(problem === undefined, problem);
    const groups = new Map(config.groups);
    groups.set(group, [...servers]);
    return this.rebalance(config, groups);
  }

  /** Config num+1 without `group`, its shards handed to the others. The caller has checked the group is present. */
  leave(config: ShardConfig, group: GroupId): ShardConfig {
    this.checkShape(config);
    assert(config.groups.has(group), `group ${group} leaves but is not in config ${config.num}`);
    const groups = new Map(config.groups);
    groups.delete(group);
    return this.rebalance(config, groups);
  }

  /** Config num+1 with `shard` owned by `group` and pinned. The caller has checked the shard, the group and the owner. */
  move(config: ShardConfig, shard: ShardId, group: GroupId): ShardConfig {
    this.checkShape(config);
    assert(shard < this.shards, `shard ${shard} out of range`);
    assert(config.groups.has(group), `move to group ${group}, not in config ${config.num}`);
    assert(config.shards[shard] !== group, `shard ${shard} is already at group ${group}`);
    const owners = config.shards.slice();
    owners[shard] = group;
    const pinned = [...config.pinned, shard].sort((a, b) => a - b);
    return this.made({ num: configNum(config.num + 1), shards: owners, groups: config.groups, pinned: new Set(pinned) });
  }

  private rebalance(config: ShardConfig, unsorted: ReadonlyMap<GroupId, readonly NodeId[]>): ShardConfig {
    const num = configNum(config.num + 1);
    const ids = sortedGroupIds({ groups: unsorted });
    const groups = new Map(ids.map((g) => [g, need(unsorted, g)] as const));
    if (ids.length === 0) {
      return this.made({ num, shards: config.shards.map(() => undefined), groups, pinned: new Set() });
    }
    const owners = config.shards.map((g) => (g !== undefined && groups.has(g) ? g : undefined));
    const counts = shardCounts({ ...config, shards: owners, groups });
    const targets = balancedTargets(counts, ids, this.shards);
    const room = new Map(ids.map((g) => [g, Math.max(0, need(targets, g) - need(counts, g))] as const));
    const ring = this.ringOf(ids.filter((g) => need(room, g) > 0));
    const released = this.release(owners, ids, counts, targets, ring, config.pinned);
    for (const s of released) {
      const g = nextWithRoom(ring, this.point(s), room);
      owners[s] = g;
      room.set(g, need(room, g) - 1);
    }
    return this.made({ num, shards: owners, groups, pinned: new Set() });
  }

  /** Shards that must move, in shard order: unassigned ones, then each group's excess over its target. */
  private release(
    owners: readonly (GroupId | undefined)[],
    ids: readonly GroupId[],
    counts: ReadonlyMap<GroupId, number>,
    targets: ReadonlyMap<GroupId, number>,
    ring: readonly VirtualNode[],
    pinned: ReadonlySet<ShardId>,
  ): ShardId[] {
    const released: ShardId[] = [];
    owners.forEach((g, s) => {
      if (g === undefined) released.push(shardId(s));
    });
    for (const g of ids) {
      const excess = need(counts, g) - need(targets, g);
      if (excess <= 0) continue;
      const mine: ShardId[] = [];
      owners.forEach((owner, s) => {
        if (owner === g) mine.push(shardId(s));
      });
      const pull = new Map(mine.map((s) => [s, distanceToRing(ring, this.point(s))] as const));
      mine.sort((a, b) => {
        const byPin = Number(pinned.has(a)) - Number(pinned.has(b));
        if (byPin !== 0) return byPin;
        return compareBigints(need(pull, a), need(pull, b)) || a - b;
      });
      released.push(...mine.slice(0, excess));
    }
    return released.sort((a, b) => a - b);
  }

  /** Virtual nodes of `ids`, in ring order (ties: lower group id first). */
  private ringOf(ids: readonly GroupId[]): VirtualNode[] {
    const nodes: VirtualNode[] = [];
    for (const group of ids) {
      for (let i = 0; i < VNODES_PER_GROUP; i++) nodes.push({ point: this.hash(`group:${group}:vnode:${i}`), group });
    }
    return nodes.sort((a, b) => compareBigints(a.point, b.point) || a.group - b.group);
  }

  private point(s: ShardId): bigint {
    const p = this.shardPoints[s];
    assert(p !== undefined, `shard ${s} out of range`);
    return p;
  }

  private checkShape(config: ShardConfig): void {
    assert(config.shards.length === this.shards, `a config of ${config.shards.length} shards on a ring of ${this.shards}`);
  }

  /** Every config the ring makes keeps the invariants of config.ts (after a join or leave: balance). */
  private made(config: ShardConfig): ShardConfig {
    const problem = checkConfig(config);
    assert(problem === undefined, `hash ring made a bad config ${config.num}: ${problem}`);
    return config;
  }
}

/**
 * floor(S/n) for every group, plus one for the S mod n groups holding the most
 * shards (ties: lower id): the balanced counts closest to `counts`.
 */
function balancedTargets(
  counts: ReadonlyMap<GroupId, number>,
  ids: readonly GroupId[],
  shards: number,
): Map<GroupId, number> {
  const base = Math.floor(shards / ids.length);
  const extra = shards % ids.length;
  const byLoad = [...ids].sort((a, b) => need(counts, b) - need(counts, a) || a - b);
  return new Map(byLoad.map((g, i) => [g, base + (i < extra ? 1 : 0)] as const));
}

/** Index of the first virtual node at or clockwise after `point`. */
function firstAtOrAfter(ring: readonly VirtualNode[], point: bigint): number {
  let lo = 0;
  let hi = ring.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ring[mid]?.point ?? 0n) < point) lo = mid + 1;
    else hi = mid;
  }
  return lo === ring.length ? 0 : lo;
}

/** Clockwise distance from `point` to the nearest virtual node of `ring` (non-empty). */
function distanceToRing(ring: readonly VirtualNode[], point: bigint): bigint {
  const node = ring[firstAtOrAfter(ring, point)];
  assert(node !== undefined, 'distance to an empty ring');
  return (node.point - point + RING_SIZE) % RING_SIZE;
}

/** The group of the first virtual node clockwise from `point` whose group has room left. */
function nextWithRoom(ring: readonly VirtualNode[], point: bigint, room: ReadonlyMap<GroupId, number>): GroupId {
  const start = firstAtOrAfter(ring, point);
  for (let k = 0; k < ring.length; k++) {
    const node = ring[(start + k) % ring.length];
    if (node !== undefined && need(room, node.group) > 0) return node.group;
  }
  // Room left equals shards released, so a released shard always finds some.
  throw new AssertionError('a released shard found no group with room');
}

function compareBigints(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The value of a key this code put in the map itself. */
function need<K, V>(map: ReadonlyMap<K, V>, key: K): V {
  const v = map.get(key);
  assert(v !== undefined, `missing ${String(key)}`);
  return v;
}
