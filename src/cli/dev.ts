// `shardpax dev` (and `npm start`): a local cluster of server processes on
// localhost with data under one folder: `nodes` nodes hosting group 0 (the
// shard master's) and `groups` KV groups, each group on `replicas` nodes
// (placed round-robin). Writes <dir>/cluster.json the first time and reuses it
// (and the data) after. Before it starts anything, the folder must be its own
// and its ports free (LocalCluster.create); once each of its own servers
// answers and every group has a leader, it (LocalCluster.awaitReady) joins at the shard master every KV
// group of a fresh cluster, then prints `ready`. It exits non-zero if a
// server dies first. Stops its servers on Ctrl-C or SIGTERM.
import { connectShardMaster } from '../client/shard-master-admin.js';
import { SHARD_MASTER_GROUP } from '../runtime/cluster-config.js';
import { shardCounts, sortedGroupIds } from '../shardmaster/config.js';
import { LocalCluster } from './local-cluster.js';

export interface DevOptions {
  readonly dir: string;
  readonly port: number;
  readonly replicas: number;
  /** Server processes; `replicas` when left out. */
  readonly nodes?: number;
  readonly groups: number;
  readonly shards: number;
}

const READY_TIMEOUT_MS = 30_000;

export async function runDev(o: DevOptions): Promise<void> {
  const { cluster, created } = await LocalCluster.create({
    dir: o.dir,
    replicas: o.replicas,
    nodes: o.nodes ?? o.replicas,
    groups: o.groups,
    shards: o.shards,
    basePort: o.port,
  });
  const n = cluster.nodes.length;
  const kvGroups = cluster.groups.filter((g) => g.id !== SHARD_MASTER_GROUP);
  console.log(
    created
      ? `created ${cluster.file}: ${n} nodes on ${cluster.nodes.map((x) => x.address).join(', ')}; ` +
          cluster.groups.map((g) => `group ${g.id} on ${g.nodes.join(',')}`).join(', ')
      : `using the existing cluster in ${cluster.file} (its data and shape are kept)`,
  );
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('stopping the local cluster');
    void cluster.stop().then(() => process.exit(code));
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  cluster.startAll();
  let spread: string;
  try {
    await cluster.awaitReady(READY_TIMEOUT_MS);
    spread = await shardSpread(cluster);
  } catch (err) {
    console.error(`error: the local cluster did not start: ${(err as Error).message}`);
    stop(1);
    return;
  }
  cluster.onCrash = (message) => console.error(message);
  const leaders = await Promise.all(cluster.groups.map(async (g) => `${g.id}:${(await cluster.awaitLeader(READY_TIMEOUT_MS, [], g.id)).id}`));
  console.log(
    `ready: ${n} nodes, group 0 (shard master) and KV groups ${kvGroups.map((g) => g.id).join(', ')}, ` +
      `leaders ${leaders.join(' ')}, ${spread}, cluster ${cluster.clusterId}. Data in ${cluster.dir}. Try:`,
  );
  console.log(`  ./bin/shardpax.mjs put greeting hello --cluster ${cluster.file}`);
  console.log(`  ./bin/shardpax.mjs get greeting --cluster ${cluster.file}`);
  console.log(`  ./bin/shardpax.mjs config --cluster ${cluster.file}`);
  console.log('get, put and del go to the KV group that owns their key\'s shard. Ctrl-C stops the cluster.');
}

/** How the latest config spreads the shards over the KV groups (awaitReady joined them). */
async function shardSpread(cluster: LocalCluster): Promise<string> {
  const admin = await connectShardMaster({ cluster: cluster.file, timeoutMs: READY_TIMEOUT_MS });
  try {
    const latest = await admin.query();
    const counts = shardCounts(latest);
    return `${latest.shards.length} shards over groups ${sortedGroupIds(latest).join(', ')}: ${[...counts.values()].join('/')} (config ${latest.num})`;
  } finally {
    await admin.close();
  }
}
