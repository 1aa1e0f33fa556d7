// Real processes (issue 3): a 3-node group over gRPC and LevelDB in temp dirs
// under a steady stream of writes from several clients. The leader is killed
// with SIGKILL mid-stream, then (after it restarts) another node; the
// survivors keep serving within a few seconds; killed nodes restart and catch
// up; every acknowledged write is readable afterwards, and the recorded
// history (with a final read of every key) is linearizable.
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type Db } from '../src/client/db.js';
import { checkLinearizable, type HistoryEntry, type KvOp } from './checkers/linearizability.js';
import { LocalCluster, sleep } from '../src/cli/local-cluster.js';

const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4'];
const dec = new TextDecoder();
let cluster: LocalCluster | undefined;

afterAll(async () => {
  await cluster?.stop();
});

/** One client's closed loop of random puts and gets until `stop()` says so. */
async function worker(db: Db, name: string, history: HistoryEntry[], stop: () => boolean): Promise<number> {
  let acked = 0;
  for (let i = 0; !stop(); i++) {
    const key = KEYS[Math.floor(Math.random() * KEYS.length)] ?? 'k0';
    const op: KvOp = Math.random() < 0.6 ? { kind: 'put', key, value: `${name}.${i}` } : { kind: 'get', key };
    const entry: HistoryEntry = { client: name, op, call: performance.now() };
    history.push(entry);
    try {
      if (op.kind === 'put') {
        await db.put(key, op.value);
        entry.ret = { time: performance.now(), output: undefined };
        acked += 1;
      } else {
        const v = await db.get(key);
        entry.ret = { time: performance.now(), output: v === undefined ? undefined : dec.decode(v) };
      }
    } catch {
      // Timed out: the outcome is unknown, which the checker allows either way.
      return acked;
    }
  }
  return acked;
}

describe('a 3-node group under SIGKILL', () => {
  it('keeps serving, loses no acknowledged write, and stays linearizable', async () => {
    const { cluster: c } = await LocalCluster.create({ replicas: 3 });
    cluster = c;
    c.startAll();
    await c.awaitReady(20_000);
    const first = await c.awaitLeader(20_000);
    const history: HistoryEntry[] = [];
    let done = false;
    const dbs = await Promise.all([0, 1, 2, 3].map(() => connect({ cluster: c.file, timeoutMs: 15_000 })));
    const workers = dbs.map((db, i) => worker(db, `c${i}`, history, () => done));

    await sleep(1500);
    await c.kill(first.id);
    const second = await c.awaitLeader(10_000, [first.id]);
    expect(second.ms, 'a new leader within a few seconds').toBeLessThan(5_000);
    await sleep(1500);
    c.start(first.id);
    await sleep(1500);
    await c.kill(second.id);
    const third = await c.awaitLeader(10_000, [second.id]);
    expect(third.ms).toBeLessThan(5_000);
    await sleep(1500);
    c.start(second.id);
    await sleep(1000);
    done = true;
    const acked = await Promise.all(workers);
    expect(acked.reduce((a, b) => a + b, 0), 'writes were acknowledged throughout').toBeGreaterThan(50);

    // Everyone catches up to the same applied slot.
    const caughtUp = async () => {
      const s = await Promise.all(c.nodes.map((n) => c.status(n.id)));
      const applied = s.map((x) => x?.appliedBelow ?? -1);
      return applied.every((a) => a === applied[0] && a > 0);
    };
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = await caughtUp();
      if (!ok) await sleep(100);
    }
    if (!ok) console.log(JSON.stringify(await Promise.all(c.nodes.map((n) => c.status(n.id)))));
    expect(ok, 'restarted nodes caught up').toBe(true);

    // A final read of every key joins the history: a lost acknowledged write would make it non-linearizable.
    const reader = dbs[0];
    if (reader === undefined) throw new Error('no client');
    for (const key of KEYS) {
      const call = performance.now();
      const v = await reader.get(key);
      history.push({ client: 'final', op: { kind: 'get', key }, call, ret: { time: performance.now(), output: v === undefined ? undefined : dec.decode(v) } });
    }
    await Promise.all(dbs.map((db) => db.close()));
    const result = checkLinearizable(history);
    expect(result.ok, result.reason).toBe(true);
  });
});
