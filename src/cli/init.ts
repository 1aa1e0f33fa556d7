// `shardpax init`: creates the storage of one node (or of every node) of a
// cluster file, each with its identity record, so that `shardpax server` can
// start on it. Only for nodes that never ran: a node that lost its data
// rejoins with `shardpax server --rebuild` instead, because a fresh store
// made by init votes at once, having forgotten what it promised.
import { findNode, loadClusterConfig, type NodeConfig } from '../runtime/cluster-config.js';
import { initNodeStorage } from '../server/node-storage.js';

export interface InitOptions {
  readonly cluster: string;
  readonly node?: string;
  readonly all?: boolean;
}

/** Creates each node's storage; a node whose folder holds anything is refused and the exit code is 1. */
export async function runInit(o: InitOptions): Promise<void> {
  const cluster = loadClusterConfig(o.cluster);
  if ((o.node === undefined) === (o.all !== true)) throw new Error('give either --node <id> or --all');
  const nodes: readonly NodeConfig[] =
    o.node === undefined ? cluster.nodes : [findNode(cluster, o.node)];
  for (const node of nodes) {
    try {
      await initNodeStorage(cluster, node);
      console.log(`node ${node.id}: created its storage in ${node.dataDir} (cluster ${cluster.clusterId})`);
    } catch (err) {
      // The other nodes still get theirs: each folder is checked on its own.
      console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    }
  }
}
