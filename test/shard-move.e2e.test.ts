// Sharded KV in real processes (issue 8): a 3-node local cluster (group 0 and
// KV groups 1-3 on every node), 200 keys put through the SDK, then
// `shardpax move` of two shards holding some of those keys to other groups
// while a put loop runs on other keys. Every acknowledged value reads back
// (the moved shards' keys from their new groups, after a pull of their data),
// and `shardpax config` shows both moves.
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from './support/e2e.js';
import { DEFAULT_SHARDS, LocalCluster } from '../src/cli/local-cluster.js';
import { connect, type Db } from '../src/client/db.js';
import { connectShardMaster, type ShardMasterAdmin } from '../src/client/shard-master-admin.js';
import { groupId, type ShardId } from '../src/core/ids.js';
import { loadKeySharder } from '../src/shardmaster/key-shard.js';

const KEYS = 200;
/** The put loop rewrites keys below this; the keys from it on keep their first value, so a moved shard's data must travel. */
const LOOPED = 100;

let cluster: LocalCluster | undefined;
let admin: ShardMasterAdmin | undefined;
let db: Db | undefined;
afterAll(async () => {
  await admin?.close();
  await db?.close();
  await cluster?.stop();
});

const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

describe('moving shards between KV groups of real processes', () => {
  it('keeps every acknowledged value while two shards move under a put loop', { timeout: 180_000 }, async () => {
    const { cluster: c } = await LocalCluster.create({ replicas: 3, groups: 3 });
    cluster = c;
    c.startAll();
    await c.awaitReady(30_000);
    const file = c.file;
    const sharder = await loadKeySharder(DEFAULT_SHARDS);
    db = await connect({ cluster: file, timeoutMs: 20_000 });
    const live = db;
    /** Per key: the value acknowledged last, and one whose put failed (it may or may not have taken effect). */
    const acked = new Map<string, string>();
    const maybe = new Map<string, string>();
    const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`);
    await Promise.all(
      keys.map(async (k) => {
        await live.put(k, `first-${k}`);
        acked.set(k, `first-${k}`);
      }),
    );

    admin = await connectShardMaster({ cluster: file, timeoutMs: 20_000 });
    const before = await admin.query();
    // Two shards holding keys the loop leaves alone, each to a group that does not own it.
    const shards = [...new Set(keys.slice(LOOPED).map((k) => sharder.shardOf(k)))].slice(0, 2);
    expect(shards).toHaveLength(2);
    const targets = new Map<ShardId, number>();
    for (const s of shards) {
      const owner = before.shards[s];
      expect(owner).toBeDefined();
      targets.set(s, ((owner ?? 0) % 3) + 1);
    }

    let looping = true;
    let loopPuts = 0;
    const loop = (async () => {
      for (let round = 0; looping; round++) {
        await Promise.all(
          keys.slice(0, LOOPED).map(async (k) => {
            const v = `r${round}-${k}`;
            try {
              await live.put(k, v);
              acked.set(k, v);
              maybe.delete(k);
              loopPuts++;
            } catch {
              maybe.set(k, v);
            }
          }),
        );
      }
    })();

    for (const [s, g] of targets) {
      const moved = await cli(['move', String(s), String(g), '--cluster', file]);
      expect(moved.code, moved.stderr).toBe(0);
      expect(moved.stdout).toContain(`shard ${s} moved to group ${g}`);
    }
    // Reads of the moved shards' keys now come from their new groups (the router follows WrongGroup).
    for (const k of keys.slice(LOOPED).filter((k) => targets.has(sharder.shardOf(k)))) {
      expect(text(await live.get(k)), k).toBe(`first-${k}`);
    }
    looping = false;
    await loop;
    expect(loopPuts).toBeGreaterThan(LOOPED);

    for (const k of keys) {
      const got = text(await live.get(k));
      const options = [acked.get(k), maybe.get(k)].filter((v) => v !== undefined);
      expect(options, `${k}: read ${got}`).toContain(got);
    }

    const latest = await admin.query();
    for (const [s, g] of targets) expect(latest.shards[s]).toBe(groupId(g));
    const json = await cli(['config', '--json', '--cluster', file]);
    expect(json.code, json.stderr).toBe(0);
    const shown = JSON.parse(json.stdout) as { num: number; shards: Array<number | null>; pinned: number[] };
    expect(shown.num).toBe(latest.num);
    expect(shown.pinned).toEqual([...shards].sort((a, b) => a - b));
    for (const [s, g] of targets) expect(shown.shards[s]).toBe(g);
    const plain = await cli(['config', '--cluster', file]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain('pinned by a move until the next join or leave');
    expect(c.crashed).toBeUndefined();
  });
});
