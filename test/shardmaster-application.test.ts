// The shard-master application (src/shardmaster/shard-master-application.ts),
// driven through the byte codec the replicas see, over an in-memory store
// (test/support/map-store.ts): every error code, refused commands change
// nothing, queries by number and latest, the on-disk layout, a restart over
// the same store, a damaged store, and `apply` fuzzed with random bytes.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { configNum, groupId, shardId } from '../src/core/ids.js';
import {
  decodeShardConfig,
  decodeShardMasterResult,
  encodeShardConfig,
  encodeShardMasterCommand,
} from '../src/shardmaster/codec.js';
import { checkConfig, MAX_GROUP_ID, MAX_GROUPS, MAX_SERVERS_PER_GROUP, shardCounts } from '../src/shardmaster/config.js';
import { configKey, LATEST_KEY, ShardMasterStorageError } from '../src/shardmaster/config-store.js';
import type { ShardMasterCommand, ShardMasterErrorCodeName, ShardMasterResult } from '../src/shardmaster/messages.js';
import { ShardMasterApplication } from '../src/shardmaster/shard-master-application.js';
import { MapStore } from './support/map-store.js';

let app: ShardMasterApplication;
beforeAll(async () => {
  app = await ShardMasterApplication.load(); // 64 shards; stateless, so one instance serves every store
});

function run(store: MapStore, command: ShardMasterCommand, on = app): ShardMasterResult {
  return decodeShardMasterResult(on.apply(encodeShardMasterCommand(command), store));
}

function read(store: MapStore, command: ShardMasterCommand, on = app): ShardMasterResult {
  return decodeShardMasterResult(on.query(encodeShardMasterCommand(command), store));
}

const join = (g: number, servers: readonly string[] = [`n${g}a`, `n${g}b`, `n${g}c`]): ShardMasterCommand => ({
  kind: 'join',
  group: groupId(g),
  servers,
});
const leave = (g: number): ShardMasterCommand => ({ kind: 'leave', group: groupId(g) });
const move = (s: number, g: number): ShardMasterCommand => ({ kind: 'move', shard: shardId(s), group: groupId(g) });
const query = (num?: number): ShardMasterCommand => ({ kind: 'query', num: num === undefined ? undefined : configNum(num) });

function done(r: ShardMasterResult): number {
  if (r.kind !== 'done') throw new Error(`expected done, got ${JSON.stringify(r)}`);
  return r.num;
}

function configOf(r: ShardMasterResult) {
  if (r.kind !== 'config') throw new Error(`expected a config, got ${JSON.stringify(r)}`);
  return r.config;
}

function errorCode(r: ShardMasterResult): ShardMasterErrorCodeName {
  if (r.kind !== 'error') throw new Error(`expected an error, got ${r.kind}`);
  return r.code;
}

/** A store with groups 1, 2, 3 joined (configs 1..3). */
function threeGroups(): MapStore {
  const store = new MapStore();
  for (const g of [1, 2, 3]) done(run(store, join(g)));
  return store;
}

describe('ShardMasterApplication: join, leave, move, query', () => {
  it('starts at config 0: no groups, every shard unassigned, nothing stored', () => {
    const store = new MapStore();
    const c = configOf(run(store, query()));
    expect(c.num).toBe(0);
    expect(c.shards).toHaveLength(64);
    expect(c.shards.every((o) => o === undefined)).toBe(true);
    expect(c.groups.size).toBe(0);
    expect(configOf(run(store, query(0)))).toEqual(c);
    expect(store.size).toBe(0);
  });

  it('each join, leave and move makes config latest+1, with the servers given', () => {
    const store = new MapStore();
    expect(done(run(store, join(1)))).toBe(1);
    expect(done(run(store, join(2, ['x', 'y'])))).toBe(2);
    const c2 = configOf(run(store, query()));
    expect(c2.groups.get(groupId(2))).toEqual(['x', 'y']);
    expect([...shardCounts(c2).values()]).toEqual([32, 32]);
    const victim = c2.shards.findIndex((o) => o === 1);
    expect(done(run(store, move(victim, 2)))).toBe(3);
    const c3 = configOf(run(store, query()));
    expect(c3.shards[victim]).toBe(2);
    expect([...c3.pinned]).toEqual([victim]);
    expect(done(run(store, leave(1)))).toBe(4);
    const c4 = configOf(run(store, query()));
    expect(c4.shards.every((o) => o === 2)).toBe(true);
    expect(c4.pinned.size).toBe(0);
  });

  it('answers a query by number and the latest, through apply and through query alike', () => {
    const store = threeGroups();
    for (let n = 0; n <= 3; n++) {
      const c = configOf(run(store, query(n)));
      expect(c.num).toBe(n);
      expect(c.groups.size).toBe(n);
      expect(configOf(read(store, query(n)))).toEqual(c);
    }
    expect(configOf(read(store, query())).num).toBe(3);
    expect(store.writes).toBe(6); // the three joins; no query wrote anything
  });

  it('stores each config once under c/<16 digits>, plus latest; older configs never change', () => {
    const store = new MapStore();
    done(run(store, join(1)));
    const first = store.get(configKey(configNum(1)));
    done(run(store, join(2)));
    expect(store.keys()).toEqual(['c/0000000000000001', 'c/0000000000000002', LATEST_KEY]);
    expect(new TextDecoder().decode(store.get(LATEST_KEY))).toBe('0000000000000002');
    expect(store.get(configKey(configNum(1)))).toEqual(first);
    expect(decodeShardConfig(store.get('c/0000000000000002') ?? new Uint8Array())).toEqual(configOf(run(store, query(2))));
  });

  it('a restart (a new instance over the same store) sees the same configs and numbers on', async () => {
    const store = threeGroups();
    done(run(store, move(0, configOf(run(store, query())).shards[0] === 3 ? 1 : 3)));
    const before = [0, 1, 2, 3, 4].map((n) => encodeShardConfig(configOf(run(store, query(n)))));
    const again = await ShardMasterApplication.load(64);
    expect(again).not.toBe(app);
    expect([0, 1, 2, 3, 4].map((n) => encodeShardConfig(configOf(run(store, query(n), again))))).toEqual(before);
    expect(done(run(store, leave(2), again))).toBe(5);
  });

  it('serves another shard count, fixed at construction', async () => {
    const small = await ShardMasterApplication.load(5);
    const store = new MapStore();
    done(run(store, join(1), small));
    done(run(store, join(2), small));
    expect([...shardCounts(configOf(run(store, query(), small))).values()]).toEqual([3, 2]);
    expect(errorCode(run(store, move(5, 1), small))).toBe('SHARD_OUT_OF_RANGE');
  });
});

describe('ShardMasterApplication: refusals', () => {
  const cases: Array<[string, ShardMasterErrorCodeName, ShardMasterCommand]> = [
    ['join of group 0', 'BAD_GROUP_ID', join(0)],
    ['join of a group id above the range', 'BAD_GROUP_ID', join(MAX_GROUP_ID + 1)],
    ['leave of group 0', 'BAD_GROUP_ID', leave(0)],
    ['move to group 0', 'BAD_GROUP_ID', move(0, 0)],
    ['move to a group id above the range', 'BAD_GROUP_ID', move(0, 4_000_000_000)],
    ['join with no servers', 'BAD_SERVERS', join(9, [])],
    ['join with a server twice', 'BAD_SERVERS', join(9, ['a', 'b', 'a'])],
    ['join with a server that is not a node id', 'BAD_SERVERS', join(9, ['a', 'no spaces'])],
    ['join with an empty server', 'BAD_SERVERS', join(9, [''])],
    ['join with too many servers', 'BAD_SERVERS', join(9, Array.from({ length: MAX_SERVERS_PER_GROUP + 1 }, (_, i) => `s${i}`))],
    ['a second join of a group', 'GROUP_ALREADY_JOINED', join(2, ['other'])],
    ['leave of an unknown group', 'UNKNOWN_GROUP', leave(9)],
    ['move to an unknown group', 'UNKNOWN_GROUP', move(0, 9)],
    ['move of a shard out of range', 'SHARD_OUT_OF_RANGE', move(64, 1)],
    ['move of a shard far out of range', 'SHARD_OUT_OF_RANGE', move(4_294_967_295, 1)],
    ['query of a config after the latest', 'NO_SUCH_CONFIG', query(4)],
    ['query of a config far after the latest', 'NO_SUCH_CONFIG', query(Number.MAX_SAFE_INTEGER)],
  ];

  it('leave of the only group: LAST_GROUP (its shards would have nobody to go to), and nothing changes', () => {
    const store = new MapStore();
    expect(done(run(store, join(1)))).toBe(1);
    const before = store.dump();
    const r = run(store, leave(1));
    expect(errorCode(r)).toBe('LAST_GROUP');
    expect(store.dump()).toEqual(before);
  });

  for (const [what, code, command] of cases) {
    it(`${what}: ${code}, and nothing changes`, () => {
      const store = threeGroups();
      const before = store.dump();
      const writes = store.writes;
      const r = run(store, command);
      expect(errorCode(r)).toBe(code);
      expect(r.kind === 'error' && r.message.length > 0).toBe(true);
      expect(store.dump()).toEqual(before);
      expect(store.writes).toBe(writes);
    });
  }

  it('move of a shard to its current owner: ALREADY_OWNER, and nothing changes', () => {
    const store = threeGroups();
    const owner = configOf(run(store, query())).shards[7] ?? 0;
    const before = store.dump();
    const r = run(store, move(7, owner));
    expect(errorCode(r)).toBe('ALREADY_OWNER');
    expect(r.kind === 'error' && r.message).toContain(`shard 7 is already at group ${owner}`);
    expect(store.dump()).toEqual(before);
  });

  it('move with no group at all: UNKNOWN_GROUP', () => {
    expect(errorCode(run(new MapStore(), move(0, 1)))).toBe('UNKNOWN_GROUP');
  });

  it(`a join past ${MAX_GROUPS} groups: TOO_MANY_GROUPS, and nothing changes`, () => {
    const store = new MapStore();
    for (let g = 1; g <= MAX_GROUPS; g++) done(run(store, join(g, ['n'])));
    const before = store.dump();
    expect(errorCode(run(store, join(MAX_GROUPS + 1, ['n'])))).toBe('TOO_MANY_GROUPS');
    expect(store.dump()).toEqual(before);
  });

  it('bad bytes: MALFORMED_COMMAND; a state change sent as a read: MALFORMED_COMMAND', () => {
    const store = threeGroups();
    const before = store.dump();
    expect(errorCode(decodeShardMasterResult(app.apply(new Uint8Array([0xff, 0xff]), store)))).toBe('MALFORMED_COMMAND');
    expect(errorCode(decodeShardMasterResult(app.apply(new Uint8Array(), store)))).toBe('MALFORMED_COMMAND'); // no kind
    for (const c of [join(9), leave(1), move(0, 1)]) {
      const r = read(store, c);
      expect(errorCode(r)).toBe('MALFORMED_COMMAND');
      expect(r.kind === 'error' && r.message).toMatch(/is not a read/);
    }
    expect(store.dump()).toEqual(before);
  });
});

describe('ShardMasterApplication: a damaged or foreign store', () => {
  it('refuses a store of another shard count with a ShardMasterStorageError', async () => {
    const store = threeGroups();
    const other = await ShardMasterApplication.load(32);
    expect(() => other.apply(encodeShardMasterCommand(query()), store)).toThrow(ShardMasterStorageError);
    expect(() => other.apply(encodeShardMasterCommand(join(9)), store)).toThrow(/64 shards, but this shard master was started with 32/);
  });

  it('refuses a damaged latest, a missing config and a damaged config', () => {
    const bad = (mutate: (s: MapStore) => void, pattern: RegExp) => {
      const store = threeGroups();
      mutate(store);
      expect(() => app.query(encodeShardMasterCommand(query()), store)).toThrow(ShardMasterStorageError);
      expect(() => app.apply(encodeShardMasterCommand(join(9)), store)).toThrow(pattern);
    };
    bad((s) => s.put(LATEST_KEY, new TextEncoder().encode('3')), /not a config number/);
    bad((s) => s.put(LATEST_KEY, new TextEncoder().encode('0000000000000000')), /not a config number/);
    bad((s) => s.del(configKey(configNum(3))), /c\/0000000000000003 is missing/);
    bad((s) => s.put(configKey(configNum(3)), new Uint8Array([1, 2, 3])), /is damaged/);
    bad((s) => s.put(configKey(configNum(3)), s.get(configKey(configNum(2))) ?? new Uint8Array()), /holds config 2/);
  });
});

describe('ShardMasterApplication: fuzz', () => {
  it('never throws on random bytes; a refusal changes nothing', () => {
    const store = threeGroups();
    const before = store.dump();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const result = decodeShardMasterResult(app.apply(bytes, store));
        if (result.kind === 'done') return; // random bytes can spell a valid command
        expect(store.dump()).toEqual(before);
        decodeShardMasterResult(app.query(bytes, store));
      }),
      { numRuns: 5000 },
    );
  });

  it('random commands: every answer is done, a config or an error; state changes only on done, and stays valid', () => {
    const idArb = fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: 1, max: 6 }) },
      { weight: 1, arbitrary: fc.constantFrom(0, MAX_GROUP_ID, MAX_GROUP_ID + 1, 4_294_967_295) },
    );
    const serversArb = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(['a'], ['a', 'b'], ['n1', 'n2', 'n3']) },
      { weight: 1, arbitrary: fc.array(fc.oneof(fc.constantFrom('a', 'b'), fc.string({ maxLength: 4 })), { maxLength: 4 }) },
    );
    const commandArb: fc.Arbitrary<ShardMasterCommand> = fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('join' as const), group: idArb.map(groupId), servers: serversArb }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('leave' as const), group: idArb.map(groupId) }) },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('move' as const),
          shard: fc.integer({ min: 0, max: 70 }).map(shardId),
          group: idArb.map(groupId),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('query' as const),
          num: fc.option(fc.integer({ min: 0, max: 40 }).map(configNum), { nil: undefined }),
        }),
      },
    );
    const seen = new Map<string, number>(); // done, or the error code: the generator must reach them
    fc.assert(
      fc.property(fc.array(commandArb, { minLength: 10, maxLength: 40 }), (commands) => {
        const store = new MapStore();
        let latest = 0;
        for (const c of commands) {
          const before = store.dump();
          const r = run(store, c);
          const outcome = r.kind === 'error' ? r.code : r.kind === 'done' ? `${c.kind} done` : r.kind;
          seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
          if (r.kind === 'done') {
            latest += 1;
            expect(r.num).toBe(latest);
            expect(c.kind).not.toBe('query');
          } else {
            expect(store.dump()).toEqual(before);
          }
          expect(checkConfig(configOf(run(store, query())))).toBeUndefined();
        }
        expect(configOf(run(store, query())).num).toBe(latest);
      }),
      { numRuns: 300, seed: 7 },
    );
    const outcomes = ['join done', 'leave done', 'move done', 'config', 'BAD_GROUP_ID', 'BAD_SERVERS', 'GROUP_ALREADY_JOINED'];
    outcomes.push('UNKNOWN_GROUP', 'SHARD_OUT_OF_RANGE', 'ALREADY_OWNER', 'NO_SUCH_CONFIG');
    for (const o of outcomes) {
      expect(seen.get(o) ?? 0, o).toBeGreaterThan(10);
    }
  });
});
