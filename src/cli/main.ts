// The `shardpax` command line.
import { Command, InvalidArgumentError } from 'commander';
import { fetchStatus, type NodeStatus } from '../client/admin.js';
import { connect, type Db } from '../client/db.js';
import { loadClusterConfig } from '../runtime/cluster-config.js';
import { runDev } from './dev.js';
import { runInit } from './init.js';
import { runServer } from './server.js';

const DEFAULT_CLUSTER = 'data/cluster.json';
const program = new Command('shardpax').description('a sharded, transactional key-value store');

function int(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

program
  .command('server')
  .description('run one node of a cluster')
  .requiredOption('--cluster <file>', 'cluster file')
  .requiredOption('--node <id>', 'which node of the cluster file this is')
  .option('--rebuild', 'the node lost its data: move its data folder aside, start on a fresh store and catch up from its peers')
  .action((o: { cluster: string; node: string; rebuild?: boolean }) => runServer(o.cluster, o.node, o.rebuild === true));

program
  .command('init')
  .description("create a new node's storage (its data folder must be missing or empty)")
  .requiredOption('--cluster <file>', 'cluster file')
  .option('--node <id>', 'the node whose storage to create')
  .option('--all', 'create the storage of every node in the cluster file')
  .action((o: { cluster: string; node?: string; all?: boolean }) => runInit(o));

program
  .command('dev')
  .description('start a local cluster on localhost (what `npm start` runs)')
  .option('--dir <dir>', 'data folder (cluster.json and one folder per node)', 'data')
  .option('--replicas <n>', 'servers in the group', int(1, 9), 3)
  .option('--port <port>', 'first port; node i listens on port+i', int(1024, 65000), 7401)
  .action((o: { dir: string; replicas: number; port: number }) => runDev(o));

const clusterOption = ['--cluster <file>', 'cluster file', DEFAULT_CLUSTER] as const;
const timeoutOption = ['--timeout <ms>', 'how long to wait for an answer', int(1, 600_000), 10_000] as const;

type DbOptions = { cluster: string; timeout: number };

/** Connects, runs one operation, and always closes. */
async function withDb<T>(o: DbOptions, op: (db: Db) => Promise<T>): Promise<T> {
  const db = await connect({ cluster: o.cluster, timeoutMs: o.timeout });
  try {
    return await op(db);
  } finally {
    await db.close();
  }
}

program
  .command('put <key> <value>')
  .description('store a value (UTF-8 text) under a key')
  .option(...clusterOption)
  .option(...timeoutOption)
  .action((key: string, value: string, o: DbOptions) => withDb(o, (db) => db.put(key, value)));

program
  .command('get <key>')
  .description('print the value under a key (exit code 2 when there is none)')
  .option(...clusterOption)
  .option(...timeoutOption)
  .action(async (key: string, o: DbOptions) => {
    const v = await withDb(o, (db) => db.get(key));
    if (v === undefined) {
      console.error(`(no value for ${JSON.stringify(key)})`);
      process.exitCode = 2;
      return;
    }
    process.stdout.write(v);
    if (process.stdout.isTTY) process.stdout.write('\n');
  });

program
  .command('del <key>')
  .description('delete a key')
  .option(...clusterOption)
  .option(...timeoutOption)
  .action((key: string, o: DbOptions) => withDb(o, (db) => db.delete(key)));

program
  .command('status')
  .description('show every node: group, address, pid, leadership, decided and applied slots')
  .option(...clusterOption)
  .option('--json', 'print JSON')
  .action(async (o: { cluster: string; json?: boolean }) => {
    const cluster = loadClusterConfig(o.cluster);
    const nodes = cluster.groups.flatMap((g) => g.nodes.map((n) => ({ group: g.id, ...n })));
    const rows = await Promise.all(
      nodes.map(async (n) => {
        try {
          return { reachable: true as const, ...(await fetchStatus(n.address, 2_000, cluster.clusterId)) };
        } catch (err) {
          return { node: n.id, group: n.group, address: n.address, reachable: false as const, error: (err as Error).message };
        }
      }),
    );
    if (o.json) {
      console.log(JSON.stringify(rows, null, 2));
      return;
    }
    for (const r of rows) console.log(r.reachable ? describe(r) : `${r.node}  group ${r.group}  ${r.address}  unreachable: ${r.error}`);
  });

function describe(s: NodeStatus): string {
  const role = s.leader ? 'leader' : `follower (leader: ${s.knownLeader || 'unknown'})`;
  return `${s.node}  group ${s.group}  ${s.address}  pid ${s.pid}  ${role}  decided<${s.decidedBelow}  applied<${s.appliedBelow}  log from ${s.logStart}${s.transferSource ? `  receiving state from ${s.transferSource} (${s.transferProgress})` : ""}`;
}

program.parseAsync().catch((err: unknown) => {
  console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
