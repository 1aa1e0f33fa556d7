// Does compaction bound disk and memory? Runs puts over a fixed key set on a
// local 3-node cluster for a long time and samples, per node, the data folder's
// size, RSS, pending decisions, accepted entries and where the log starts.
//   node --import tsx bench/compaction-soak.ts [--seconds 180] [--concurrency 64] [--keys 10000] [--value-bytes 100]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalCluster, sleep } from '../src/cli/local-cluster.js';
import { connect } from '../src/client/db.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '180' },
    concurrency: { type: 'string', default: '64' },
    keys: { type: 'string', default: '10000' },
    'value-bytes': { type: 'string', default: '100' },
    every: { type: 'string', default: '15' },
  },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const keys = Number(values.keys);
const value = 'v'.repeat(Number(values['value-bytes']));

function duBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? duBytes(p) : statSync(p).size;
  }
  return total;
}

const mb = (b: number) => (b / 1024 / 1024).toFixed(1);

async function main(): Promise<void> {
  const { cluster } = await LocalCluster.create({ replicas: 3 });
  process.on('SIGINT', () => {
    cluster.killNow();
    process.exit(130);
  });
  try {
    cluster.startAll();
    await cluster.awaitLeader(30_000);
    await cluster.joinKvGroups(30_000); // a KV group serves no key until it joined
    const dbs = await Promise.all(
      Array.from({ length: Math.ceil(concurrency / 64) }, () => connect({ cluster: cluster.file, timeoutMs: 30_000 })),
    );
    let ops = 0;
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    const workers = Array.from({ length: concurrency }, async (_, w) => {
      const db = dbs[w % dbs.length];
      if (db === undefined) return;
      while (performance.now() < end) {
        try {
          await db.put(`key${Math.floor(Math.random() * keys)}`, value);
          ops += 1;
        } catch {
          errors += 1;
        }
      }
    });
    console.log(`soak: ${seconds} s of puts, concurrency ${concurrency}, ${keys} keys x ${value.length} B (live data ~${mb(keys * (value.length + 10))} MB)`);
    console.log('  t s      ops  errors  node  data MB  RSS MB  pend  accepted  log from   applied<');
    const started = performance.now();
    while (performance.now() < end) {
      await sleep(Number(values.every) * 1000);
      const statuses = await cluster.statuses(2_000);
      for (const n of cluster.nodes) {
        const s = statuses.get(n.id);
        const t = ((performance.now() - started) / 1000).toFixed(0).padStart(4);
        console.log(
          `${t} ${String(ops).padStart(8)} ${String(errors).padStart(7)}  ${n.id.padEnd(4)} ${mb(duBytes(join(cluster.dir, n.id))).padStart(8)} ${mb(s?.rssBytes ?? 0).padStart(7)} ${String(s?.pendingDecisions ?? '-').padStart(4)} ${String(s?.acceptedEntries ?? '-').padStart(9)} ${String(s?.logStart ?? '-').padStart(10)} ${String(s?.appliedBelow ?? '-').padStart(9)}`,
        );
      }
    }
    await Promise.all(workers);
    await Promise.all(dbs.map((db) => db.close()));
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
