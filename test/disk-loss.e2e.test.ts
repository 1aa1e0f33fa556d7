// Real processes, issue 7 finding 1: under load, kill follower C; A and B keep
// acknowledging writes; SIGKILL A and B together and delete B's data folder;
// start B (--rebuild) and C (stale); start A later. B must not vote as if it
// remembered: while A is down nothing is decided (C alone is no majority),
// and once A is back every acknowledged write is there, read through every
// node, and B votes again. Reads are linearizable here by construction: each
// key is written once, and every read starts after every write ended.
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cli/local-cluster.js';
import { setServerTuning, until } from './support/e2e.js';
import { connect, type Db } from '../src/client/db.js';
import { loadClusterConfig } from '../src/runtime/cluster-config.js';

const dec = new TextDecoder();
let cluster: LocalCluster | undefined;
let restoreTuning: (() => void) | undefined;

afterAll(async () => {
  await cluster?.stop();
  restoreTuning?.();
});


/** Puts `prefix<i>` from `workers` writers for `ms`; returns what was acknowledged. */
async function load(db: Db, prefix: string, ms: number, workers = 16): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  const end = performance.now() + ms;
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < end) {
        const key = `${prefix}${next++}`;
        const value = `${key}=${Math.random()}`;
        try {
          await db.put(key, value);
          acked.set(key, value);
        } catch {
          // not acknowledged: it may or may not be there, and nothing is checked for it
        }
      }
    }),
  );
  return acked;
}

describe('a node that lost its disk', () => {
  it('rebuilds without voting: no acknowledged write is lost, and it votes again', { timeout: 120_000 }, async () => {
    // A short quiet period (twice maxScoutAgeMs), so the rebuilt node may vote within the test.
    restoreTuning = setServerTuning({ maxScoutAgeMs: 500 });
    const c = (cluster = (await LocalCluster.create({ replicas: 3 })).cluster);
    c.onCrash = () => {};
    c.startAll();
    await c.awaitReady(20_000);
    const { id: a } = await c.awaitLeader(20_000);
    const [b, cc] = c.nodes.map((n) => n.id).filter((id) => id !== a) as [string, string];
    const db = await connect({ cluster: c.file, timeoutMs: 3_000 });
    const acked = await load(db, 'early', 1_000);

    await c.kill(cc);
    for (const [k, v] of await load(db, 'late', 3_000)) acked.set(k, v); // acknowledged by A and B only
    expect(acked.size).toBeGreaterThan(20);
    await Promise.all([c.kill(a), c.kill(b)]);
    const bDir = loadClusterConfig(c.file).nodes.find((n) => n.id === b)?.dataDir ?? '';
    rmSync(bDir, { recursive: true, force: true });

    c.start(b, { rebuild: true });
    c.start(cc);
    await until('B and C serve', async () => (await c.status(b)) !== undefined && (await c.status(cc)) !== undefined, 20_000);
    // A rebuilding node and a stale one are no majority: nothing is decided without A.
    await expect(db.put('without-a', 'x')).rejects.toMatchObject({ mayHaveTakenEffect: true });
    const bStatus = await c.status(b);
    expect(bStatus?.rebuilding, 'B is rebuilding').not.toBe('');
    expect((await c.status(cc))?.leader).toBe(false);

    c.start(a);
    await c.awaitLeader(30_000);
    await until(
      'B votes again and every node has applied the same',
      async () => {
        const all = await c.statuses(1_000);
        const rows = [...all.values()];
        const applied = new Set(rows.map((s) => s.appliedBelow));
        return rows.length === 3 && applied.size === 1 && rows.every((s) => s.rebuilding === '');
      },
      60_000,
    );
    // Every acknowledged write, read through each node in turn (a read is answered by the node asked).
    for (const id of [a, b, cc]) {
      const address = c.nodes.find((n) => n.id === id)?.address ?? '';
      const one = await connect({ endpoints: [address], clusterId: loadClusterConfig(c.file).clusterId, timeoutMs: 10_000 });
      const entries = [...acked];
      for (let i = 0; i < entries.length; i += 64) {
        const slice = entries.slice(i, i + 64);
        const got = await Promise.all(slice.map(([k]) => one.get(k)));
        slice.forEach(([k, v], j) => {
          const g = got[j];
          expect(g === undefined ? undefined : dec.decode(g), `${k} through ${id}`).toBe(v);
        });
      }
      await one.close();
    }
    // B votes: with C down, A and B still decide.
    await c.kill(cc);
    await db.put('after', 'y');
    expect(dec.decode((await db.get('after')) ?? new Uint8Array())).toBe('y');
    await db.close();
  });
});
