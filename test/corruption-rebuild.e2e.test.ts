// Real processes (issue 7): a node whose write-ahead log was damaged refuses
// to start, naming its folder and `--rebuild`; started with `--rebuild`, it
// moves the damaged folder aside, rejoins without voting, catches up from its
// peers, votes again, and serves every acknowledged write.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cli/local-cluster.js';
import { setServerTuning, until } from './support/e2e.js';
import { connect } from '../src/client/db.js';
import { loadClusterConfig } from '../src/runtime/cluster-config.js';

const dec = new TextDecoder();
let cluster: LocalCluster | undefined;
let restoreTuning: (() => void) | undefined;

afterAll(async () => {
  await cluster?.stop();
  restoreTuning?.();
});


describe('a node with a damaged write-ahead log', () => {
  it('refuses to start, and comes back with --rebuild', { timeout: 120_000 }, async () => {
    restoreTuning = setServerTuning({ maxScoutAgeMs: 500 }); // a short quiet period for the rebuild
    const c = (cluster = (await LocalCluster.create({ replicas: 3 })).cluster);
    const exits: string[] = [];
    c.onCrash = (message) => exits.push(message);
    c.startAll();
    await c.awaitReady(20_000);
    const db = await connect({ cluster: c.file, timeoutMs: 10_000 });
    const written = new Map<string, string>();
    for (let i = 0; i < 60; i++) {
      await db.put(`k${i}`, `value ${i}`);
      written.set(`k${i}`, `value ${i}`);
    }
    await c.kill('n3');
    const n3 = loadClusterConfig(c.file).nodes.find((n) => n.id === 'n3')?.dataDir ?? '';
    const log = (await readdir(n3)).find((f) => f.endsWith('.log'));
    expect(log, `a write-ahead log in ${n3}`).toBeDefined();
    const bytes = await readFile(join(n3, log ?? ''));
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0x5a;
    await writeFile(join(n3, log ?? ''), bytes);

    c.start('n3');
    await until('n3 refuses to start', async () => exits.some((m) => m.startsWith('node n3 ')), 20_000);
    const refusal = await readFile(c.logOf('n3'), 'utf8');
    expect(refusal).toContain(`corrupted storage in ${n3}`);
    expect(refusal).toContain('--rebuild');
    c.crashed = undefined;

    c.start('n3', { rebuild: true });
    await until(
      'n3 votes again and has applied what the others have',
      async () => {
        const rows = [...(await c.statuses(1_000)).values()];
        return rows.length === 3 && new Set(rows.map((s) => s.appliedBelow)).size === 1 && rows.every((s) => s.rebuilding === '');
      },
      60_000,
    );
    const address = c.nodes.find((n) => n.id === 'n3')?.address ?? '';
    const one = await connect({ endpoints: [address], clusterId: c.clusterId, timeoutMs: 10_000 });
    const got = await Promise.all([...written.keys()].map((k) => one.get(k)));
    [...written.values()].forEach((v, i) => {
      const g = got[i];
      expect(g === undefined ? undefined : dec.decode(g)).toBe(v);
    });
    await one.close();
    await db.close();
  });
});
