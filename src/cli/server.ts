// `shardpax server`: runs one node of a cluster file until SIGTERM/SIGINT.
import { loadClusterConfig } from '../runtime/cluster-config.js';
import { startServerNode } from '../server/server-node.js';

export async function runServer(clusterPath: string, id: string): Promise<void> {
  const cluster = loadClusterConfig(clusterPath);
  const node = await startServerNode(cluster, id);
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
