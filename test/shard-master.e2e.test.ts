// The shard master hosted on group 0 (issue 8), real processes: 3 nodes each
// hosting group 0 and KV groups 1 and 2. Through the SDK's admin client:
// config 0, joins that balance the shards, a move, every refusal a
// ShardMasterError with its code that changes nothing, and the shard master
// serving again after its leader's node is SIGKILLed (the KV group keeps its
// data too: the node's crash took down its replica of every group). Through
// the CLI: config (text and JSON), join/leave/move errors with exit 1 and a
// clear line, and status listing every node's groups.
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from './support/e2e.js';
import { LocalCluster } from '../src/cli/local-cluster.js';
import { connect, type Db } from '../src/client/db.js';
import { ShardMasterError } from '../src/client/errors.js';
import { connectShardMaster, type ShardMasterAdmin } from '../src/client/shard-master-admin.js';
import { groupId } from '../src/core/ids.js';
import { shardCounts } from '../src/shardmaster/config.js';


let cluster: LocalCluster | undefined;
let admin: ShardMasterAdmin | undefined;
let db: Db | undefined;
afterAll(async () => {
  await admin?.close();
  await db?.close();
  await cluster?.stop();
});

/** What `p` rejects with, as a ShardMasterError (the test fails on anything else). */
async function refusal(p: Promise<unknown>): Promise<ShardMasterError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ShardMasterError)) throw new Error(`expected a ShardMasterError, got ${String(err)}`);
  return err;
}

describe('the shard master on group 0', () => {
  it('joins, moves and refuses through the SDK and the CLI, and survives its leader node', { timeout: 120_000 }, async () => {
    const { cluster: c } = await LocalCluster.create({ replicas: 3, groups: 2 });
    cluster = c;
    c.startAll();
    await c.awaitReady(30_000);
    const file = c.file;

    admin = await connectShardMaster({ cluster: file, timeoutMs: 15_000 });
    const zero = await admin.query(0);
    expect(zero.num).toBe(0);
    expect(zero.shards).toHaveLength(64);
    expect(zero.groups.size).toBe(0);
    // awaitReady joined the KV groups: 1 at config 1, 2 at config 2.
    expect((await admin.query(1)).groups.size).toBe(1);
    const two = await admin.query();
    expect(two.num).toBe(2);
    expect([...shardCounts(two).values()]).toEqual([32, 32]);
    const shard = two.shards.findIndex((g) => g === groupId(1));
    expect(await admin.move(shard, 2)).toBe(3);
    expect((await admin.query()).shards[shard]).toBe(2);
    expect((await admin.query(1)).groups.size).toBe(1); // an earlier config, as it was

    // Refusals: each a ShardMasterError with its code, and none makes a config.
    const refused = [
      [admin.join(1, ['n1']), 'GROUP_ALREADY_JOINED'],
      [admin.join(0, ['n1']), 'BAD_GROUP_ID'],
      [admin.leave(9), 'UNKNOWN_GROUP'],
      [admin.move(64, 1), 'SHARD_OUT_OF_RANGE'],
      [admin.move(shard, 2), 'ALREADY_OWNER'],
      [admin.move(0, 7), 'UNKNOWN_GROUP'],
      [admin.query(99), 'NO_SUCH_CONFIG'],
    ] as const;
    for (const [p, code] of refused) {
      const err = await refusal(p);
      expect(err.code).toBe(code);
      expect(err.mayHaveTakenEffect).toBe(false);
    }
    expect((await admin.query()).num).toBe(3);

    // The KV group serves alongside; a crash of the shard master's leader node takes down its replica of
    // every group, and each group elects on its own.
    db = await connect({ cluster: file, timeoutMs: 15_000 });
    await db.put('k', 'v');
    const leader = await c.awaitLeader(10_000, [], groupId(0));
    await c.kill(leader.id);
    expect(await admin.join(2, ['n1']).catch((e: unknown) => e)).toBeInstanceOf(ShardMasterError); // answered by the new leader
    expect(await admin.leave(2)).toBe(4);
    expect(new TextDecoder().decode(await db.get('k'))).toBe('v');
    c.start(leader.id);
    await c.awaitReady(30_000);

    // The CLI: config as text and JSON, errors with exit 1, status by group.
    const text = await cli(['config', '--cluster', file]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('config 4: 64 shards, 1 groups');
    expect(text.stdout).toContain('group 1  64 shards  servers n1, n2, n3');
    const json = await cli(['config', '--num', '3', '--json', '--cluster', file]);
    expect(json.code, json.stderr).toBe(0);
    const three = JSON.parse(json.stdout) as { num: number; groups: Array<{ id: number; shards: number }>; pinned: number[] };
    expect(three.num).toBe(3);
    expect(three.groups.map((g) => g.shards)).toEqual([31, 33]);
    expect(three.pinned).toEqual([shard]);
    const errors = [
      [['move', '64', '1'], 'shard 64 is out of range: shards are 0..63 (SHARD_OUT_OF_RANGE)'],
      [['leave', '7'], 'group 7 is not in config 4 (UNKNOWN_GROUP)'],
      [['join', '9', 'n1'], 'group 9 is not in'],
      [['config', '--num', '99'], 'config 99 does not exist; the latest is 4 (NO_SUCH_CONFIG)'],
    ] as const;
    for (const [args, says] of errors) {
      const r = await cli([...args, '--cluster', file]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(says);
    }
    const join = await cli(['join', '2', 'n3', 'n2', 'n1', '--cluster', file]);
    expect(join, join.stderr).toMatchObject({ code: 0 });
    expect(join.stdout).toContain('group 2 joined on n3, n2, n1: config 5');
    const status = await cli(['status', '--cluster', file]);
    expect(status.code, status.stderr).toBe(0);
    for (const n of ['n1', 'n2', 'n3']) expect(status.stdout).toContain(`${n}  127.0.0.1:`);
    expect(status.stdout.match(/^ {2}group [012] {2}(leader|follower)/gm)).toHaveLength(9);
    expect(c.crashed).toBeUndefined();
  });
});
