// The shard master's codec (src/shardmaster/codec.ts): round trips of every
// command and result, canonical config bytes, and strict refusals of bad
// bytes, each as a typed error (never an AssertionError).
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { AssertionError } from '../src/core/assert.js';
import { configNum, groupId, nodeId, shardId } from '../src/core/ids.js';
import * as wire from '../src/gen/shardpax/v1/shardmaster.js';
import { WireError } from '../src/rpc/codec.js';
import {
  decodeShardConfig,
  decodeShardMasterCommand,
  decodeShardMasterResult,
  encodeShardConfig,
  encodeShardMasterCommand,
  encodeShardMasterResult,
} from '../src/shardmaster/codec.js';
import { initialConfig, type ShardConfig } from '../src/shardmaster/config.js';
import { HashRing } from '../src/shardmaster/hash-ring.js';
import {
  type ShardMasterCommand,
  type ShardMasterErrorCodeName,
  ShardMasterInputError,
  type ShardMasterResult,
} from '../src/shardmaster/messages.js';
import { loadXxHash64, type XxHash64 } from '../src/shardmaster/xxhash64.js';

let hash: XxHash64;
beforeAll(async () => {
  hash = await loadXxHash64();
});

const uint32 = fc.nat({ max: 0xffff_ffff });

const commandArb: fc.Arbitrary<ShardMasterCommand> = fc.oneof(
  fc.record({
    kind: fc.constant('join' as const),
    group: uint32.map(groupId),
    servers: fc.array(fc.string({ unit: 'binary', maxLength: 8 }), { maxLength: 5 }),
  }),
  fc.record({ kind: fc.constant('leave' as const), group: uint32.map(groupId) }),
  fc.record({ kind: fc.constant('move' as const), shard: uint32.map(shardId), group: uint32.map(groupId) }),
  fc.record({
    kind: fc.constant('query' as const),
    num: fc.option(fc.maxSafeNat().map(configNum), { nil: undefined }),
  }),
);

/** A valid config: made by the ring from a random sequence of steps. */
const configArb: fc.Arbitrary<ShardConfig> = fc
  .record({
    shards: fc.constantFrom(1, 3, 64),
    steps: fc.array(fc.tuple(fc.nat({ max: 2 }), fc.nat(), fc.nat()), { maxLength: 12 }),
  })
  .map(({ shards, steps }) => {
    const ring = new HashRing(hash, shards);
    let c = initialConfig(shards);
    for (const [kind, a, b] of steps) {
      const present = [...c.groups.keys()].sort((x, y) => x - y);
      if (kind === 0 && !c.groups.has(groupId(1 + (a % 9)))) {
        c = ring.join(c, groupId(1 + (a % 9)), [nodeId(`n${a % 5}`), nodeId(`m${a % 3}`)]);
      } else if (kind === 1 && present.length > 0) {
        c = ring.leave(c, present[a % present.length] ?? groupId(1));
      } else if (present.length > 1) {
        const s = shardId(b % shards);
        const to = present.filter((g) => g !== c.shards[s]);
        c = ring.move(c, s, to[a % to.length] ?? groupId(1));
      }
    }
    return c;
  });

const CODES: ShardMasterErrorCodeName[] = [
  'MALFORMED_COMMAND',
  'BAD_GROUP_ID',
  'BAD_SERVERS',
  'GROUP_ALREADY_JOINED',
  'UNKNOWN_GROUP',
  'TOO_MANY_GROUPS',
  'SHARD_OUT_OF_RANGE',
  'ALREADY_OWNER',
  'NO_SUCH_CONFIG',
];

const resultArb: fc.Arbitrary<ShardMasterResult> = fc.oneof(
  configArb.map((config) => ({ kind: 'config' as const, config })),
  fc.maxSafeNat().map((n) => ({ kind: 'done' as const, num: configNum(n) })),
  fc.record({ kind: fc.constant('error' as const), code: fc.constantFrom(...CODES), message: fc.string() }),
);

/** Wire bytes of a config, built field by field (to make bad ones). */
function rawConfig(w: Partial<wire.ShardConfig>): Uint8Array {
  return wire.ShardConfig.encode({ num: 1, shards: [], groups: [], pinned: [], ...w }).finish();
}

function malformed(bytes: Uint8Array): string {
  try {
    decodeShardMasterCommand(bytes);
  } catch (e) {
    if (e instanceof ShardMasterInputError && e.code === 'MALFORMED_COMMAND') return e.message;
    throw e;
  }
  throw new Error('decoded');
}

function wireRefusal(decode: () => unknown): string {
  try {
    decode();
  } catch (e) {
    if (e instanceof WireError) return e.message;
    throw e;
  }
  throw new Error('decoded');
}

describe('round trips', () => {
  it('every command', () => {
    fc.assert(
      fc.property(commandArb, (c) => {
        expect(decodeShardMasterCommand(encodeShardMasterCommand(c))).toEqual(c);
      }),
      { numRuns: 500 },
    );
  });

  it('a query of config 0 is not a query of the latest', () => {
    const zero = encodeShardMasterCommand({ kind: 'query', num: configNum(0) });
    const latest = encodeShardMasterCommand({ kind: 'query', num: undefined });
    expect(zero).not.toEqual(latest);
    expect(decodeShardMasterCommand(zero)).toEqual({ kind: 'query', num: 0 });
    expect(decodeShardMasterCommand(latest)).toEqual({ kind: 'query', num: undefined });
  });

  it('every result, and every config in its one canonical encoding', () => {
    fc.assert(
      fc.property(resultArb, (r) => {
        const bytes = encodeShardMasterResult(r);
        const back = decodeShardMasterResult(bytes);
        expect(back).toEqual(r);
        expect(encodeShardMasterResult(back)).toEqual(bytes);
        if (r.kind === 'config') {
          const canonical = encodeShardConfig(r.config);
          expect(encodeShardConfig(decodeShardConfig(canonical))).toEqual(canonical);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('config 0 has every shard unassigned on the wire (owner 0)', () => {
    const w = wire.ShardConfig.decode(encodeShardConfig(initialConfig(3)));
    expect(w).toEqual({ num: 0, shards: [0, 0, 0], groups: [], pinned: [] });
    expect(decodeShardConfig(encodeShardConfig(initialConfig(3)))).toEqual(initialConfig(3));
  });
});

describe('strict refusals of command bytes: MALFORMED_COMMAND, never a throw of another kind', () => {
  const leave = encodeShardMasterCommand({ kind: 'leave', group: groupId(3) });

  it('trailing bytes, a trailing zero or end-group tag', () => {
    expect(malformed(new Uint8Array([...leave, 0x08, 0x01]))).toMatch(/canonical|trailing/);
    expect(malformed(new Uint8Array([...leave, 0x00, 0x01]))).toMatch(/trailing/);
    // The generated decoder stops at these and reports no trailing byte: only the canonical check sees them.
    expect(malformed(new Uint8Array([...leave, 0x00]))).toMatch(/canonical/);
    expect(malformed(new Uint8Array([...leave, 0x0c]))).toMatch(/canonical/);
  });

  it('no kind, bad framing, unknown fields, a non-canonical varint', () => {
    expect(malformed(new Uint8Array())).toMatch(/without a kind/);
    expect(malformed(new Uint8Array([0x12, 0x05, 0x08]))).toMatch(/does not decode/); // truncated
    expect(malformed(new Uint8Array([0x12, 0x02, 0x08, 0x03, 0x28, 0x01]))).toMatch(/canonical/); // unknown field 5
    expect(malformed(new Uint8Array([0x12, 0x03, 0x08, 0x83, 0x00]))).toMatch(/canonical/); // group 3 in two bytes
  });

  it('invalid UTF-8 in a server name', () => {
    // join { group: 1, servers: ["\xff"] }
    expect(malformed(new Uint8Array([0x0a, 0x05, 0x08, 0x01, 0x12, 0x01, 0xff]))).toMatch(/does not decode/);
  });

  it('a config number past the largest safe integer', () => {
    const big = wire.ShardMasterCommand.encode({ kind: { $case: 'query', value: { num: 2 ** 53 } } }).finish();
    expect(malformed(big)).toMatch(/MAX_SAFE_INTEGER/);
  });

  it('random bytes: a command or MALFORMED_COMMAND, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        try {
          decodeShardMasterCommand(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(ShardMasterInputError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('encoding a number that does not fit the wire is a bug of the caller', () => {
    expect(() => encodeShardMasterCommand({ kind: 'leave', group: groupId(2 ** 32) })).toThrow(AssertionError);
  });
});

describe('strict refusals of results and configs: WireError', () => {
  const servers = ['a', 'b'];

  it('a result without a kind, an unknown or unspecified error code', () => {
    expect(wireRefusal(() => decodeShardMasterResult(new Uint8Array()))).toMatch(/without a kind/);
    for (const code of [0, 99]) {
      const bytes = wire.ShardMasterResult.encode({ kind: { $case: 'error', value: { code, message: 'x' } } }).finish();
      expect(wireRefusal(() => decodeShardMasterResult(bytes))).toMatch(/ShardMasterError with code/);
    }
  });

  it('configs that break an invariant or the canonical order', () => {
    const cases: Array<[Partial<wire.ShardConfig>, RegExp]> = [
      [{ shards: [] }, /shard count must be 1\.\.4096/],
      [{ shards: new Array<number>(4097).fill(0), num: 1 }, /shard count/],
      [{ shards: [1, 2], groups: [{ id: 2, servers }, { id: 1, servers }] }, /groups not strictly ascending/],
      [{ shards: [1, 1], groups: [{ id: 1, servers }, { id: 1, servers }] }, /groups not strictly ascending/],
      [{ shards: [1, 1], groups: [{ id: 1, servers }], pinned: [1, 0] }, /pinned shards not strictly ascending/],
      [{ shards: [1, 1], groups: [{ id: 1, servers }], pinned: [2] }, /pinned shard 2 is out of range/],
      [{ shards: [1, 3], groups: [{ id: 1, servers }] }, /owned by group 3, not in the config/],
      [{ shards: [1, 0], groups: [{ id: 1, servers }] }, /shard 1 is unassigned, but groups exist/],
      [{ shards: [1, 0] }, /no group exists/],
      [{ shards: [0, 0], pinned: [0] }, /pinned shard 0 is unassigned/],
      [{ shards: [1, 1, 1], groups: [{ id: 1, servers }, { id: 2, servers }] }, /no shard is pinned, yet group shard counts differ by 3/],
      [{ num: 0, shards: [1], groups: [{ id: 1, servers }] }, /config 0 has groups/],
      [{ shards: [1], groups: [{ id: 1, servers: [] }] }, /at least one server/],
      [{ shards: [1], groups: [{ id: 1, servers: ['a', 'a'] }] }, /listed twice/],
      [{ shards: [1], groups: [{ id: 1, servers: ['no spaces'] }] }, /not a node id/],
      [{ shards: [70_000], groups: [{ id: 70_000, servers }] }, /group id must be 1\.\.65535/],
    ];
    for (const [w, pattern] of cases) {
      expect(wireRefusal(() => decodeShardConfig(rawConfig(w))), JSON.stringify(w).slice(0, 80)).toMatch(pattern);
    }
  });

  it('a config whose pins explain its imbalance is fine', () => {
    const w = { shards: [1, 1, 1], groups: [{ id: 1, servers }, { id: 2, servers }], pinned: [0] };
    const c = decodeShardConfig(rawConfig(w));
    expect(c.pinned).toEqual(new Set([0]));
  });

  it('invalid UTF-8 and trailing bytes in a config', () => {
    const good = rawConfig({ shards: [1], groups: [{ id: 1, servers: ['a'] }] });
    expect(wireRefusal(() => decodeShardConfig(new Uint8Array([...good, 0x00])))).toMatch(/canonical/);
    const at = good.indexOf(0x61); // the server name "a"
    const bad = good.slice();
    bad[at] = 0xff;
    expect(wireRefusal(() => decodeShardConfig(bad))).toMatch(/does not decode/);
  });

  it('random bytes: a config or a WireError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        try {
          decodeShardConfig(bytes);
          decodeShardMasterResult(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(WireError);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
