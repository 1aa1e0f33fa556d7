// Real processes (issue 6): a state transfer survives SIGKILL of its receiver
// and of its sender. A follower's data folder is wiped; it restarts with
// --rebuild and rebuilds by transfer from a peer while clients keep writing;
// the receiver is killed in the middle (and restarted without --rebuild: its
// new store is its own), then (in its second transfer) the sender. Afterwards every node
// converges, and every acknowledged write is read back through the rebuilt
// node itself (a read is answered by the server the client asked, from its
// own state, once it applies the read).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster, sleep } from '../src/cli/local-cluster.js';
import { setServerTuning, until } from './support/e2e.js';
import { connect, type Db } from '../src/client/db.js';
import type { ReplicaStatus } from '../src/client/admin.js';

const dec = new TextDecoder();
let cluster: LocalCluster | undefined;
let restoreTuning: (() => void) | undefined;

afterAll(async () => {
  await cluster?.stop();
  restoreTuning?.();
});


describe('state transfer under SIGKILL', () => {
  it('a wiped node rebuilds by transfer despite its receiver and then its sender being killed mid-way; nothing acknowledged is lost', async () => {
    // A short log tail, so a wiped node must transfer; small chunks, so a transfer lasts long enough to be interrupted.
    restoreTuning = setServerTuning({ logRetainSlots: 50, maxChunkBytes: 8192 });
    const created = await LocalCluster.create({ replicas: 3 });
    const c = (cluster = created.cluster);
    c.startAll();
    await c.awaitReady(20_000);
    const { id: leader } = await c.awaitLeader(20_000);
    const victim = c.nodes.map((n) => n.id).find((id) => id !== leader) ?? '';
    const acked = new Map<string, string>();
    const uncertain = new Set<string>();
    const dbs: Db[] = await Promise.all([0, 1, 2, 3].map(() => connect({ cluster: c.file })));
    const value = (k: number, round: number) => `v${round}.${k}.`.padEnd(1500, 'x');

    // 4000 keys of 1.5 KB: ~6 MB, a few hundred 8 KiB chunks.
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async (_, w) => {
        const db = dbs[w % dbs.length];
        if (db === undefined) return;
        while (next < 4000) {
          const k = next++;
          await db.put(`k${k}`, value(k, 0));
          acked.set(`k${k}`, value(k, 0));
        }
      }),
    );

    // Writers keep going through everything below; their acknowledged puts must survive.
    let stop = false;
    const writers = Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        const db = dbs[w];
        if (db === undefined) return;
        for (let round = 1; !stop; round++) {
          const k = w * 1000 + (round % 1000); // each writer owns its keys: acks arrive in apply order
          const v = value(k, round * 10 + w);
          try {
            await db.put(`k${k}`, v);
            acked.set(`k${k}`, v);
          } catch {
            uncertain.add(`k${k}`); // timed out: it may or may not have applied
            return;
          }
        }
      }),
    );

    const status = async (id: string): Promise<ReplicaStatus | undefined> => c.status(id, 500);
    const transferring = async (id: string) => {
      const s = await status(id);
      return s !== undefined && s.transferSource !== '' && s.transferProgress.startsWith('state/') && !s.transferProgress.endsWith('""');
    };

    await c.kill(victim);
    rmSync(join(c.dir, victim), { recursive: true, force: true });
    c.start(victim, { rebuild: true }); // restarts below are plain: its new store stays marked rebuilding
    await until(`${victim} receives state`, () => transferring(victim), 30_000, 50);
    await c.kill(victim); // the receiver, mid-transfer
    c.start(victim);
    await until(`${victim} receives state again`, () => transferring(victim), 30_000, 50);
    const source = (await status(victim))?.transferSource ?? '';
    expect(source).not.toBe('');
    await c.kill(source); // the sender, mid-transfer
    await sleep(300);
    c.start(source);

    await until(
      'every node converges',
      async () => {
        const all = await c.statuses(500);
        if (all.size < 3) return false;
        const applied = [...all.values()].map((s) => s.appliedBelow);
        return [...all.values()].every((s) => s.transferSource === '') && Math.max(...applied) - Math.min(...applied) < 20;
      },
      120_000,
      50,
    );
    stop = true;
    await writers;
    for (const db of dbs) await db.close();

    // Every acknowledged value, read through the rebuilt node.
    const address = c.nodes.find((n) => n.id === victim)?.address ?? '';
    const viaVictim = await connect({ endpoints: [address], timeoutMs: 30_000 });
    try {
      const keys = [...acked.keys()].filter((k) => !uncertain.has(k));
      expect(keys.length).toBeGreaterThan(3900);
      for (let i = 0; i < keys.length; i += 200) {
        const slice = keys.slice(i, i + 200);
        const got = await Promise.all(slice.map((k) => viaVictim.get(k)));
        slice.forEach((k, j) => {
          const v = got[j];
          expect(v === undefined ? undefined : dec.decode(v), k).toBe(acked.get(k));
        });
      }
    } finally {
      await viaVictim.close();
    }
  }, 300_000);
});
