// shard -> group assignment (src/shardmaster/hash-ring.ts), property-tested
// against a naive model (STYLE.md 7) after random sequences of joins, leaves
// and moves:
// - balance: per-group counts differ by at most 1 after every join or leave;
// - fewest moves: a join or leave changes exactly as many owners as the best
//   balanced assignment found by brute force over every target vector;
// - minimal movement from a balanced, unpinned config: a join moves shards only
//   into the new group, a leave only the leaving group's shards;
// - a move changes one shard and pins it; pins last until the next join or
//   leave, and a rebalance moves a pinned shard only once its group has no
//   unpinned shard left to give;
// - the exact assignment equals the naive model's (linear scans of the ring
//   instead of binary search and walk);
// - determinism: independent rings, and configs whose maps were filled in
//   another order, give byte-identical configs.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type GroupId, groupId, type NodeId, nodeId, type ShardId, shardId } from '../src/core/ids.js';
import { encodeShardConfig } from '../src/shardmaster/codec.js';
import { checkConfig, initialConfig, type ShardConfig, shardCounts } from '../src/shardmaster/config.js';
import { HashRing, VNODES_PER_GROUP } from '../src/shardmaster/hash-ring.js';
import { loadXxHash64, type XxHash64 } from '../src/shardmaster/xxhash64.js';

let hash: XxHash64;
beforeAll(async () => {
  hash = await loadXxHash64();
});

const GROUP_POOL = [1, 2, 3, 5, 8, 13, 21, 65_535].map(groupId);
const servers = (g: GroupId): NodeId[] => [nodeId(`n${g}a`), nodeId(`n${g}b`)];

// ---- the naive model ---------------------------------------------------------

const RING = 1n << 64n;

/** Clockwise distance from shard s to group g's nearest virtual node, by trying every one. */
function naiveDistance(s: number, g: GroupId): bigint {
  const q = hash(`shard:${s}`);
  let best = RING;
  for (let i = 0; i < VNODES_PER_GROUP; i++) {
    const d = (((hash(`group:${g}:vnode:${i}`) - q) % RING) + RING) % RING;
    if (d < best) best = d;
  }
  return best;
}

/** Smallest (distance, group id) over `groups`. */
function naiveNearest(s: number, groups: readonly GroupId[]): { group: GroupId; distance: bigint } {
  let best: { group: GroupId; distance: bigint } | undefined;
  for (const g of groups) {
    const distance = naiveDistance(s, g);
    if (best === undefined || distance < best.distance || (distance === best.distance && g < best.group)) {
      best = { group: g, distance };
    }
  }
  if (best === undefined) throw new Error('no group');
  return best;
}

function countsOf(owners: readonly (GroupId | undefined)[], groups: readonly GroupId[]): Map<GroupId, number> {
  const counts = new Map(groups.map((g) => [g, 0]));
  for (const o of owners) if (o !== undefined && counts.has(o)) counts.set(o, (counts.get(o) ?? 0) + 1);
  return counts;
}

/** Every balanced target vector over `groups`: which r of them hold floor(S/n)+1. */
function* targetVectors(groups: readonly GroupId[], shards: number): Generator<Map<GroupId, number>> {
  const n = groups.length;
  const base = Math.floor(shards / n);
  const extra = shards % n;
  for (let mask = 0; mask < 1 << n; mask++) {
    let bits = 0;
    for (let i = 0; i < n; i++) bits += (mask >> i) & 1;
    if (bits !== extra) continue;
    yield new Map(groups.map((g, i) => [g, base + ((mask >> i) & 1)]));
  }
}

/**
 * The fewest owner changes of any balanced assignment over `groups`, by brute
 * force: shards of a group not in `groups` (or unassigned) must all change;
 * for a target vector t, group h must give away max(0, count - t_h).
 */
function bruteForceFewestMoves(prev: readonly (GroupId | undefined)[], groups: readonly GroupId[]): number {
  if (groups.length === 0) return prev.filter((o) => o !== undefined).length;
  const homeless = prev.filter((o) => o === undefined || !groups.includes(o)).length;
  const counts = countsOf(prev, groups);
  let best = Infinity;
  for (const t of targetVectors(groups, prev.length)) {
    let moves = homeless;
    for (const g of groups) moves += Math.max(0, (counts.get(g) ?? 0) - (t.get(g) ?? 0));
    best = Math.min(best, moves);
  }
  return best;
}

/** The model's rebalance: same rules as hash-ring.ts, done the slow, obvious way. */
function naiveRebalance(prev: ShardConfig, groups: readonly GroupId[]): (GroupId | undefined)[] {
  const shards = prev.shards.length;
  if (groups.length === 0) return prev.shards.map(() => undefined);
  const owners = prev.shards.map((o) => (o !== undefined && groups.includes(o) ? o : undefined));
  const counts = countsOf(owners, groups);
  const byLoad = [...groups].sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0) || a - b);
  const target = new Map(byLoad.map((g, i) => [g, Math.floor(shards / groups.length) + (i < shards % groups.length ? 1 : 0)]));
  const room = new Map(groups.map((g) => [g, Math.max(0, (target.get(g) ?? 0) - (counts.get(g) ?? 0))]));
  const receivers = groups.filter((g) => (room.get(g) ?? 0) > 0);
  const released: number[] = [];
  owners.forEach((o, s) => {
    if (o === undefined) released.push(s);
  });
  for (const g of groups) {
    const excess = (counts.get(g) ?? 0) - (target.get(g) ?? 0);
    if (excess <= 0) continue;
    const mine = owners.flatMap((o, s) => (o === g ? [s] : []));
    const key = (s: number) => [prev.pinned.has(shardId(s)) ? 1 : 0, naiveNearest(s, receivers).distance, s] as const;
    mine.sort((a, b) => {
      const [pa, da, sa] = key(a);
      const [pb, db, sb] = key(b);
      return pa - pb || (da < db ? -1 : da > db ? 1 : 0) || sa - sb;
    });
    released.push(...mine.slice(0, excess));
  }
  for (const s of released.sort((a, b) => a - b)) {
    const g = naiveNearest(s, receivers.filter((r) => (room.get(r) ?? 0) > 0)).group;
    owners[s] = g;
    room.set(g, (room.get(g) ?? 0) - 1);
  }
  return owners;
}

// ---- operations --------------------------------------------------------------

type Op =
  | { kind: 'join'; pick: number }
  | { kind: 'leave'; pick: number }
  | { kind: 'move'; shard: number; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('join' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('leave' as const), pick: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('move' as const), shard: fc.nat(), pick: fc.nat() }) },
);
const shardsArb = fc.constantFrom(1, 2, 3, 5, 8, 16, 64);

const ids = (c: ShardConfig): GroupId[] => [...c.groups.keys()].sort((a, b) => a - b);

/** What the op means against `c`, or undefined if it cannot apply (no such group, already the owner, ...). */
type Resolved =
  | { kind: 'join'; group: GroupId }
  | { kind: 'leave'; group: GroupId }
  | { kind: 'move'; shard: ShardId; group: GroupId };

function resolve(c: ShardConfig, op: Op): Resolved | undefined {
  const present = ids(c);
  switch (op.kind) {
    case 'join': {
      const free = GROUP_POOL.filter((g) => !c.groups.has(g));
      const g = free[op.pick % Math.max(1, free.length)];
      return g === undefined ? undefined : { kind: 'join', group: g };
    }
    case 'leave': {
      const g = present[op.pick % Math.max(1, present.length)];
      return g === undefined ? undefined : { kind: 'leave', group: g };
    }
    case 'move': {
      const s = shardId(op.shard % c.shards.length);
      const others = present.filter((g) => g !== c.shards[s]);
      const g = others[op.pick % Math.max(1, others.length)];
      return g === undefined ? undefined : { kind: 'move', shard: s, group: g };
    }
  }
}

function step(ring: HashRing, c: ShardConfig, r: Resolved): ShardConfig {
  switch (r.kind) {
    case 'join':
      return ring.join(c, r.group, servers(r.group));
    case 'leave':
      return ring.leave(c, r.group);
    case 'move':
      return ring.move(c, r.shard, r.group);
  }
}

/** The same config with its maps filled in reverse order. */
function scrambled(c: ShardConfig): ShardConfig {
  return {
    num: c.num,
    shards: [...c.shards],
    groups: new Map([...c.groups].reverse()),
    pinned: new Set([...c.pinned].reverse()),
  };
}

function spread(c: ShardConfig): number {
  const counts = [...shardCounts(c).values()];
  return counts.length === 0 ? 0 : Math.max(...counts) - Math.min(...counts);
}

const changed = (a: ShardConfig, b: ShardConfig): number[] =>
  a.shards.flatMap((o, s) => (o !== b.shards[s] ? [s] : []));

/** Every property of one step, from `prev` to `next` by `r`. */
function checkStep(prev: ShardConfig, r: Resolved, next: ShardConfig): void {
  expect(checkConfig(next)).toBeUndefined();
  expect(next.num).toBe(prev.num + 1);
  const moved = changed(prev, next);
  if (r.kind === 'move') {
    expect(moved).toEqual([r.shard]);
    expect(next.shards[r.shard]).toBe(r.group);
    expect([...next.pinned].sort((a, b) => a - b)).toEqual([...new Set([...prev.pinned, r.shard])].sort((a, b) => a - b));
    expect(ids(next)).toEqual(ids(prev));
    return;
  }
  const groups = ids(next);
  expect(next.pinned.size).toBe(0);
  expect(spread(next)).toBeLessThanOrEqual(1);
  expect(moved.length).toBe(bruteForceFewestMoves(prev.shards, groups));
  expect(next.shards).toEqual(naiveRebalance(prev, groups));
  if (groups.length === 0) expect(next.shards.every((o) => o === undefined)).toBe(true);
  if (prev.groups.size === 0) expect(next.shards.every((o) => o === r.group)).toBe(true);
  const startedBalanced = prev.groups.size > 0 && prev.pinned.size === 0;
  if (startedBalanced && r.kind === 'join') for (const s of moved) expect(next.shards[s]).toBe(r.group);
  if (startedBalanced && r.kind === 'leave') for (const s of moved) expect(prev.shards[s]).toBe(r.group);
  // A pinned shard of a remaining group moves only if every unpinned shard of that group moved too.
  for (const s of moved) {
    const from = prev.shards[s];
    if (!prev.pinned.has(shardId(s)) || from === undefined || !next.groups.has(from)) continue;
    prev.shards.forEach((o, t) => {
      if (o === from && !prev.pinned.has(shardId(t))) expect(next.shards[t], `unpinned shard ${t} stayed`).not.toBe(from);
    });
  }
}

// ---- tests -------------------------------------------------------------------

describe('HashRing: examples', () => {
  it('the first join takes every shard; the next ones take their share; the last leave leaves all unassigned', () => {
    const ring = new HashRing(hash, 64);
    let c = initialConfig(64);
    c = ring.join(c, groupId(1), servers(groupId(1)));
    expect(c.shards.every((o) => o === 1)).toBe(true);
    c = ring.join(c, groupId(2), servers(groupId(2)));
    expect([...shardCounts(c)]).toEqual([
      [1, 32],
      [2, 32],
    ]);
    c = ring.join(c, groupId(3), servers(groupId(3)));
    expect([...shardCounts(c).values()].sort()).toEqual([21, 21, 22]);
    c = ring.leave(c, groupId(2));
    c = ring.leave(c, groupId(1));
    c = ring.leave(c, groupId(3));
    expect(c.num).toBe(6);
    expect(c.shards.every((o) => o === undefined)).toBe(true);
    expect(c.groups.size).toBe(0);
  });

  it('more groups than shards: the extra groups own nothing, counts still differ by at most 1', () => {
    const ring = new HashRing(hash, 3);
    let c = initialConfig(3);
    for (const g of GROUP_POOL.slice(0, 5)) c = ring.join(c, g, servers(g));
    expect([...shardCounts(c).values()].sort()).toEqual([0, 0, 1, 1, 1]);
  });

  it('after pins unbalanced things, a join moves exactly the fewest shards, keeping pinned shards put', () => {
    // 8 shards over groups 1 and 2 (4 each); three of group 2's shards moved to 1 -> counts 7 and 1.
    const ring = new HashRing(hash, 8);
    let c = initialConfig(8);
    c = ring.join(c, groupId(1), servers(groupId(1)));
    c = ring.join(c, groupId(2), servers(groupId(2)));
    const ofTwo = c.shards.flatMap((o, s) => (o === 2 ? [shardId(s)] : []));
    for (const s of ofTwo.slice(0, 3)) c = ring.move(c, s, groupId(1));
    expect([...shardCounts(c).values()]).toEqual([7, 1]);
    const pinned = [...c.pinned];
    const before = c;
    c = ring.join(c, groupId(3), servers(groupId(3)));
    // 3 groups of 8: targets 3, 3, 2 with the 3s for the two most loaded (1, then 2).
    // Group 1 must give 4, group 2 gains 2, group 3 gains 2: 4 moves, and no
    // balanced assignment moves fewer. Group 1 gives its 4 unpinned shards.
    expect([...shardCounts(c)]).toEqual([
      [1, 3],
      [2, 3],
      [3, 2],
    ]);
    expect(changed(before, c)).toHaveLength(4);
    expect(bruteForceFewestMoves(before.shards, [1, 2, 3].map(groupId))).toBe(4);
    for (const s of pinned) expect(c.shards[s]).toBe(1);
    expect(c.pinned.size).toBe(0);
  });

  it('a join from balance takes, from each group, the shards nearest the new group on the ring', () => {
    const ring = new HashRing(hash, 64);
    let c = initialConfig(64);
    for (const g of [1, 2, 3].map(groupId)) c = ring.join(c, g, servers(g));
    const next = ring.join(c, groupId(5), servers(groupId(5)));
    for (const g of [1, 2, 3].map(groupId)) {
      const mine = c.shards.flatMap((o, s) => (o === g ? [s] : []));
      const gave = mine.filter((s) => next.shards[s] === 5);
      const nearest = [...mine]
        .sort((a, b) => {
          const da = naiveDistance(a, groupId(5));
          const db = naiveDistance(b, groupId(5));
          return da < db ? -1 : da > db ? 1 : a - b;
        })
        .slice(0, gave.length);
      expect(gave.sort((a, b) => a - b)).toEqual(nearest.sort((a, b) => a - b));
    }
  });

  it('4096 shards over 200 groups: balanced and minimal at every join and leave', () => {
    const ring = new HashRing(hash, 4096);
    let c = initialConfig(4096);
    for (let g = 1; g <= 200; g++) {
      const next = ring.join(c, groupId(g), servers(groupId(g)));
      expect(spread(next)).toBeLessThanOrEqual(1);
      if (g > 1) expect(changed(c, next).length).toBe(Math.floor(4096 / g));
      c = next;
    }
    for (let g = 1; g <= 200; g += 7) {
      const next = ring.leave(c, groupId(g));
      expect(spread(next)).toBeLessThanOrEqual(1);
      expect(changed(c, next).every((s) => c.shards[s] === g)).toBe(true);
      c = next;
    }
  });

  it('refuses, as a bug of the caller, what the application must have checked', () => {
    const ring = new HashRing(hash, 4);
    const c1 = ring.join(initialConfig(4), groupId(1), servers(groupId(1)));
    expect(() => ring.join(c1, groupId(1), servers(groupId(1)))).toThrow(/joins twice/);
    expect(() => ring.leave(c1, groupId(2))).toThrow(/not in config/);
    expect(() => ring.move(c1, shardId(0), groupId(1))).toThrow(/already at group/);
    expect(() => ring.move(c1, shardId(4), groupId(1))).toThrow(/out of range/);
    expect(() => ring.join(initialConfig(5), groupId(2), servers(groupId(2)))).toThrow(/5 shards on a ring of 4/);
  });
});

describe('HashRing: properties against the naive model', () => {
  it('balance, fewest moves, minimal movement, pins and the exact assignment, after any sequence', () => {
    fc.assert(
      fc.property(shardsArb, fc.array(opArb, { minLength: 1, maxLength: 30 }), (shards, ops) => {
        const ring = new HashRing(hash, shards);
        let c = initialConfig(shards);
        for (const op of ops) {
          const r = resolve(c, op);
          if (r === undefined) continue;
          const next = step(ring, c, r);
          checkStep(c, r, next);
          c = next;
        }
      }),
      { numRuns: 300 },
    );
  });

  it('determinism: independent rings and other map insertion orders give byte-identical configs', () => {
    fc.assert(
      fc.property(shardsArb, fc.array(opArb, { minLength: 1, maxLength: 30 }), (shards, ops) => {
        const a = new HashRing(hash, shards);
        const b = new HashRing(hash, shards);
        let ca = initialConfig(shards);
        let cb = initialConfig(shards);
        for (const op of ops) {
          const r = resolve(ca, op);
          if (r === undefined) continue;
          ca = step(a, ca, r);
          cb = step(b, scrambled(cb), r);
          expect(encodeShardConfig(cb)).toEqual(encodeShardConfig(ca));
          expect(encodeShardConfig(scrambled(ca))).toEqual(encodeShardConfig(ca));
        }
        expect(ca.num).toBe(cb.num);
      }),
      { numRuns: 200 },
    );
  });

  it('the generator reaches what the properties are about', () => {
    // Without this, the properties above could pass by never joining over
    // pins, never leaving from balance, or never running out of groups.
    const seen = { joinOverPins: 0, leaveFromBalance: 0, lastLeave: 0, leaveOverPins: 0 };
    fc.assert(
      fc.property(shardsArb, fc.array(opArb, { minLength: 1, maxLength: 30 }), (shards, ops) => {
        const ring = new HashRing(hash, shards);
        let c = initialConfig(shards);
        for (const op of ops) {
          const r = resolve(c, op);
          if (r === undefined) continue;
          if (r.kind === 'join' && c.pinned.size > 0) seen.joinOverPins++;
          if (r.kind === 'leave' && c.pinned.size > 0) seen.leaveOverPins++;
          if (r.kind === 'leave' && c.pinned.size === 0 && c.groups.size > 1) seen.leaveFromBalance++;
          if (r.kind === 'leave' && c.groups.size === 1) seen.lastLeave++;
          c = step(ring, c, r);
        }
      }),
      { numRuns: 300, seed: 42 },
    );
    for (const [what, n] of Object.entries(seen)) expect(n, what).toBeGreaterThan(20);
  });
});
