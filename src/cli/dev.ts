// `shardpax dev` (and `npm start`): a local group of server processes on
// localhost with data under one folder. Writes <dir>/cluster.json the first
// time and reuses it (and the data) after. Before it starts anything, the
// folder must be its own and its ports free (LocalCluster.create); it prints
// `ready` only once each of its own servers answers and one leads, and exits
// non-zero if a server dies first. Stops its servers on Ctrl-C or SIGTERM.
import { LocalCluster } from './local-cluster.js';

export interface DevOptions {
  readonly dir: string;
  readonly replicas: number;
  readonly port: number;
}

const READY_TIMEOUT_MS = 30_000;

export async function runDev(o: DevOptions): Promise<void> {
  const { cluster, created } = await LocalCluster.create({ dir: o.dir, replicas: o.replicas, basePort: o.port });
  const n = cluster.nodes.length;
  console.log(
    created
      ? `created ${cluster.file}: ${n} nodes on ${cluster.nodes.map((x) => x.address).join(', ')}`
      : `using the existing cluster in ${cluster.file} (its data is kept)`,
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
  let leader: string;
  try {
    leader = await cluster.awaitReady(READY_TIMEOUT_MS);
  } catch (err) {
    console.error(`error: the local cluster did not start: ${(err as Error).message}`);
    stop(1);
    return;
  }
  cluster.onCrash = (message) => console.error(message);
  console.log(`ready: ${n} nodes, leader ${leader}, cluster ${cluster.clusterId}. Data in ${cluster.dir}. Try:`);
  console.log(`  ./bin/shardpax.mjs put greeting hello --cluster ${cluster.file}`);
  console.log(`  ./bin/shardpax.mjs get greeting --cluster ${cluster.file}`);
  console.log('Ctrl-C stops the cluster.');
}
