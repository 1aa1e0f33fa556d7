// Unit tests of a KV group's per-shard state machine (src/kv/shard-table.ts),
// fed steps directly over an in-memory store: installing configs in order,
// refusing shards it does not serve, receiving chunks in order and once, and
// deleting a handed-off shard only on the receiver's notice.
import { beforeEach, describe, expect, it } from 'vitest';
import { type ConfigNum, configNum, type GroupId, groupId, nodeId, type ShardId, shardId } from '../src/core/ids.js';
import { markCount, resetMarks } from '../src/core/marks.js';
import type { KvGroupStep } from '../src/kv/migration-messages.js';
import { type ShardStore, ShardTable } from '../src/kv/shard-table.js';
import { shardPrefix } from '../src/paxos/group-server.js';
import type { ShardConfig } from '../src/shardmaster/config.js';
import { MapStore } from './support/map-store.js';

const SHARDS = 4;
const g1 = groupId(1);
const g2 = groupId(2);
const bytes = (s: string) => new TextEncoder().encode(s);

class ClearableStore extends MapStore implements ShardStore {
  clear(prefix: string): void {
    for (const k of this.keys()) if (k.startsWith(prefix)) this.del(k);
  }
}

/** Config `num` with shard i owned by owners[i]; `pinned` are the shards a move placed. */
function config(num: number, owners: readonly GroupId[], pinned: readonly number[] = []): ShardConfig {
  const groups = new Map([...new Set(owners)].sort((a, b) => a - b).map((g) => [g, [nodeId(`n${g}a`), nodeId(`n${g}b`)]] as const));
  return { num: configNum(num), shards: owners, groups, pinned: new Set(pinned.map(shardId)) };
}

function table(self: GroupId) {
  const store = new ClearableStore();
  const t = new ShardTable(self, SHARDS, store);
  const apply = (step: KvGroupStep) => {
    t.apply(step);
    t.checkInvariants();
    // A restart reads back exactly what the steps wrote.
    const reloaded = new ShardTable(self, SHARDS, store.clone() as ClearableStore);
    expect(reloaded.installed()).toEqual(t.installed());
    for (let s = 0; s < SHARDS; s++) expect(reloaded.record(shardId(s))).toEqual(t.record(shardId(s)));
  };
  return { t, store, apply };
}

const s1 = shardId(1);
const C1 = config(1, [g1, g1, g2, g2]);
const C2 = config(2, [g1, g2, g2, g2], [1]); // shard 1 moves from g1 to g2

function chunk(shard: ShardId, num: ConfigNum, fromKey: string, entries: Array<[string, string]>, next?: string): KvGroupStep {
  return { kind: 'chunk', shard, configNum: num, fromKey, entries: entries.map(([k, v]) => [k, bytes(v)]), next };
}

beforeEach(() => resetMarks());

describe('ShardTable', () => {
  it('serves nothing at config 0; the first join serves its shards at once, empty, and refuses the rest with its config number', () => {
    const { t, apply } = table(g1);
    for (let s = 0; s < SHARDS; s++) expect(t.refusal(shardId(s))).toBe(0);
    apply({ kind: 'install', config: C1 });
    expect([0, 1, 2, 3].map((s) => t.refusal(shardId(s)))).toEqual([undefined, undefined, 1, 1]);
    expect(t.receiving()).toEqual([]);
  });

  it('walks configs strictly in order: a config that does not follow the installed one changes nothing', () => {
    const { t, apply } = table(g1);
    apply({ kind: 'install', config: C2 });
    expect(t.installed().num).toBe(0);
    apply({ kind: 'install', config: C1 });
    apply({ kind: 'install', config: C1 }); // a duplicate
    expect(t.installed().num).toBe(1);
    expect(markCount('kv group skips a config it cannot install yet')).toBe(2);
  });

  it('a shard that leaves stops being served at once and is kept, frozen, for the receiver to pull', () => {
    const { t, store, apply } = table(g1);
    apply({ kind: 'install', config: C1 });
    store.put(`${shardPrefix(s1)}d/apple`, bytes('red'));
    apply({ kind: 'install', config: C2 });
    expect(t.refusal(s1)).toBe(2);
    expect(t.record(s1).state).toEqual({ kind: 'handingOff', configNum: 1 });
    expect(t.frozen(s1, configNum(1))).toBe(true);
    expect(t.frozen(s1, configNum(0))).toBe(false);
    expect(store.get(`${shardPrefix(s1)}d/apple`)).toEqual(bytes('red'));
  });

  it('a shard that arrives is received before it serves, and the next config waits for it', () => {
    const { t, apply } = table(g2);
    apply({ kind: 'install', config: C1 });
    apply({ kind: 'install', config: C2 });
    expect(t.refusal(s1)).toBe(2);
    expect(t.receiving()).toEqual([[s1, { kind: 'receiving', from: g1, servers: ['n1a', 'n1b'], configNum: 1, nextKey: '' }]]);
    const C3 = config(3, [g2, g2, g2, g2]);
    expect(t.canInstall(C3)).toBe(false);
    apply({ kind: 'install', config: C3 });
    expect(t.installed().num).toBe(2);
  });

  it('applies chunks only at the durable position: each once, in order, and the last one makes the shard serve', () => {
    const { t, store, apply } = table(g2);
    apply({ kind: 'install', config: C1 });
    apply({ kind: 'install', config: C2 });
    const first = chunk(s1, configNum(1), '', [['d/a', '1'], ['x/m', 'meta']], 'x/n');
    apply(chunk(s1, configNum(1), 'x/n', [['x/z', 'late']])); // ahead of the position: skipped
    apply(chunk(s1, configNum(0), '', [['d/a', 'old']], 'x/n')); // for another config: skipped
    expect(store.size).toBeGreaterThan(0);
    expect(store.get(`${shardPrefix(s1)}d/a`)).toBeUndefined();
    apply(first);
    apply(first); // a duplicate (a retry proposed twice): skipped
    expect(t.record(s1).state).toMatchObject({ kind: 'receiving', nextKey: 'x/n' });
    expect(t.refusal(s1)).toBe(2);
    apply(chunk(s1, configNum(1), 'x/n', [['x/z', 'last']]));
    expect(t.refusal(s1)).toBeUndefined();
    expect(t.record(s1)).toEqual({ state: { kind: 'serving' }, notice: { group: g1, servers: ['n1a', 'n1b'], configNum: 1 } });
    expect(store.get(`${shardPrefix(s1)}d/a`)).toEqual(bytes('1'));
    expect(store.get(`${shardPrefix(s1)}x/m`)).toEqual(bytes('meta'));
    expect(store.get(`${shardPrefix(s1)}x/z`)).toEqual(bytes('last'));
    expect(markCount('kv group skips a stale or out-of-order chunk')).toBe(3);
    expect(markCount('kv group serves a shard it received')).toBe(1);
    apply({ kind: 'noticeAcked', shard: s1, configNum: configNum(1) });
    expect(t.record(s1).notice).toBeUndefined();
  });

  it('deletes a handed-off shard only on a notice for the config it was handed off in', () => {
    const { t, store, apply } = table(g1);
    apply({ kind: 'install', config: C1 });
    store.put(`${shardPrefix(s1)}d/apple`, bytes('red'));
    store.put(`${shardPrefix(shardId(0))}d/pear`, bytes('green'));
    apply({ kind: 'delete', shard: s1, configNum: configNum(1) }); // still serving: no deletion
    expect(store.get(`${shardPrefix(s1)}d/apple`)).toEqual(bytes('red'));
    apply({ kind: 'install', config: C2 });
    apply({ kind: 'delete', shard: s1, configNum: configNum(0) }); // another config's notice
    expect(store.get(`${shardPrefix(s1)}d/apple`)).toEqual(bytes('red'));
    expect(markCount('source deletes a handed-off shard after the receiver has it')).toBe(0);
    apply({ kind: 'delete', shard: s1, configNum: configNum(1) });
    expect(markCount('source deletes a handed-off shard after the receiver has it')).toBe(1);
    expect(store.keys().filter((k) => k.startsWith(shardPrefix(s1)))).toEqual([]);
    expect(store.get(`${shardPrefix(shardId(0))}d/pear`)).toEqual(bytes('green')); // other shards untouched
    expect(t.record(s1)).toEqual({ state: undefined, notice: undefined });
    expect(t.frozen(s1, configNum(1))).toBe(false);
  });

  it('a config that gives back a shard still handed off waits until that copy is deleted (its receiver may still pull it)', () => {
    const { t, store, apply } = table(g1);
    apply({ kind: 'install', config: C1 });
    store.put(`${shardPrefix(s1)}d/stale`, bytes('old'));
    apply({ kind: 'install', config: C2 });
    const back = config(3, [g1, g1, g2, g2], [1]); // back to g1 from g2
    expect(t.canInstall(back)).toBe(false);
    apply({ kind: 'install', config: back });
    expect(t.installed().num).toBe(2);
    expect(t.frozen(s1, configNum(1))).toBe(true); // g2 can still pull it
    apply({ kind: 'delete', shard: s1, configNum: configNum(1) }); // g2 has it
    apply({ kind: 'install', config: back });
    expect(t.record(s1).state).toEqual({ kind: 'receiving', from: g2, servers: ['n2a', 'n2b'], configNum: 2, nextKey: '' });
    apply(chunk(s1, configNum(2), '', [['d/fresh', 'new']]));
    expect(store.keys().filter((k) => k.startsWith(shardPrefix(s1)))).toEqual([`${shardPrefix(s1)}d/fresh`]);
    expect(t.refusal(s1)).toBeUndefined();
  });
});
