// `shardpax server`: runs one node of a cluster file until SIGTERM/SIGINT.
import { loadClusterConfig } from '../runtime/cluster-config.js';
import { parseTuning, startServerNode } from '../server/server-node.js';

export async function runServer(clusterPath: string, id: string): Promise<void> {
  const cluster = loadClusterConfig(clusterPath);
  // SHARDPAX_TUNING: a JSON object of numeric tuning knobs (tests shorten the log tail with it).
  const node = await startServerNode(cluster, id, parseTuning(process.env.SHARDPAX_TUNING));
  const s = node.status();
  console.log(`node ${s.node} of group ${s.group} serving on ${s.address} (pid ${process.pid})`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`node ${s.node}: ${signal}, stopping`);
    node.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
