// `shardpax dev` (and `npm start`): a local group of server processes on
// localhost with data under one folder. Writes <dir>/cluster.json the first
// time and reuses it (and the data) after; prints `ready` once a leader is
// elected; stops its servers on Ctrl-C or SIGTERM.
import { LocalCluster } from './local-cluster.js';

export interface DevOptions {
  readonly dir: string;
  readonly replicas: number;
  readonly port: number;
}

export async function runDev(o: DevOptions): Promise<void> {
  const { cluster, created } = await LocalCluster.create({ dir: o.dir, replicas: o.replicas, basePort: o.port });
  const n = cluster.nodes.length;
  console.log(
    created
      ? `created ${cluster.file}: ${n} nodes on ${cluster.nodes.map((x) => x.address).join(', ')}`
      : `using the existing cluster in ${cluster.file} (its data is kept)`,
  );
  cluster.onCrash = (message) => console.error(message);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log('stopping the local cluster');
    void cluster.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  cluster.startAll();
  let leader: string;
  try {
    leader = (await cluster.awaitLeader(30_000)).id;
  } catch (err) {
    console.error(`no leader: ${(err as Error).message}`);
    stop();
    return;
  }
  console.log(`ready: ${n} nodes, leader ${leader}. Data in ${cluster.dir}. Try:`);
  console.log(`  ./bin/shardpax.mjs put greeting hello --cluster ${cluster.file}`);
  console.log(`  ./bin/shardpax.mjs get greeting --cluster ${cluster.file}`);
  console.log('Ctrl-C stops the cluster.');
}
