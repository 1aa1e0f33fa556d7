// `shardpax server`: runs one node of a cluster file until SIGTERM/SIGINT.
// It refuses storage that is missing, empty, damaged or not its own (a
// StorageRefusedError, exit code 1); `--rebuild` replaces it with a fresh store.
import { StorageCorruptionError } from '../core/storage.js';
import { findNode, loadClusterConfig } from '../runtime/cluster-config.js';
import { parseTuning, startServerNode } from '../server/server-node.js';

export async function runServer(clusterPath: string, id: string, rebuild: boolean): Promise<void> {
  const cluster = loadClusterConfig(clusterPath);
  const fatal = stopOnFatal(id, findNode(cluster, id).dataDir);
  // SHARDPAX_TUNING: a JSON object of numeric tuning knobs (tests shorten the log tail with it).
  const node = await startServerNode(cluster, id, { tuning: parseTuning(process.env.SHARDPAX_TUNING), rebuild }).catch(
    (err: unknown) => {
      if (err instanceof StorageCorruptionError) fatal(err); // refused at start: the same line as later on
      throw err;
    },
  );
  const s = node.status();
  if (node.movedAside !== undefined) console.log(`node ${s.node}: the old data folder was moved to ${node.movedAside}`);
  const mode = node.rebuilding ? ', rebuilding its storage from its peers' : '';
  const groups = node.groups.length === 0 ? 'no group' : `groups ${node.groups.join(', ')}`;
  console.log(`node ${s.node} hosting ${groups} (cluster ${cluster.clusterId}) serving on ${s.address} (pid ${process.pid})${mode}`);
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

/**
 * A node that cannot go on (damaged storage found by a read, a failed disk
 * write) stops the process with one clear line: for damaged storage, the
 * error's own message, which says where and that `--rebuild` is the way back.
 */
function stopOnFatal(id: string, dataDir: string): (err: unknown) => never {
  const stop = (err: unknown): never => {
    const what = err instanceof StorageCorruptionError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`node ${id} (data folder ${dataDir}) stopped: ${what}`);
    process.exit(1);
  };
  process.on('uncaughtException', stop);
  process.on('unhandledRejection', stop);
  return stop;
}
