// The `shardpax` command line.
import { Command, InvalidArgumentError, Option } from 'commander';
import { fetchStatus, type NodeStatus } from '../client/admin.js';
import { connect, type Db } from '../client/db.js';
import { ClusterUnreachableError } from '../client/errors.js';
import { groupsOf, loadClusterConfig } from '../runtime/cluster-config.js';
import { CliError, EXIT_NO_VALUE, failure } from './cli-error.js';
import { runDev } from './dev.js';
import { runInit } from './init.js';
import { encodingOf, formatValue, keyFromArg, readValue, valueSource } from './kv-bytes.js';
import { runServer } from './server.js';
import { runConfig, runJoin, runLeave, runMove } from './shard-master-commands.js';

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
  .description('start a local cluster on localhost (what `npm start` runs): the shard master and KV groups, joined')
  .option('--dir <dir>', 'data folder (cluster.json and one folder per node)', 'data')
  .option('--nodes <n>', 'server processes (default: --replicas)', int(1, 16))
  .option('--groups <n>', 'KV groups (1, 2, ...) besides group 0, the shard master', int(1, 64), 3)
  .option('--replicas <n>', 'replicas of each group, placed round-robin over the nodes', int(1, 9), 3)
  .option('--shards <n>', 'shards of the cluster', int(1, 4096), 64)
  .option('--port <port>', 'first port; node i listens on port+i', int(1024, 65000), 7401)
  .action((o: { dir: string; nodes?: number; groups: number; replicas: number; shards: number; port: number }) => runDev(o));

const clusterOption = ['--cluster <file>', 'cluster file', DEFAULT_CLUSTER] as const;
const timeoutOption = ['--timeout <ms>', 'how long to wait for an answer', int(1, 600_000), 10_000] as const;

type DbOptions = { cluster: string; timeout: number };
type KvOptions = DbOptions & { hex?: boolean; base64?: boolean };

// Byte-exact keys and values: Node has already turned invalid UTF-8 in plain arguments into U+FFFD.
const hexOption = () => new Option('--hex', 'key and value arguments are hex; get prints the value as hex').conflicts('base64');
const base64Option = () => new Option('--base64', 'key and value arguments are base64; get prints the value as base64');

/** Connects, runs one operation, and always closes. */
async function withDb<T>(o: DbOptions, op: (db: Db) => Promise<T>): Promise<T> {
  let db: Db;
  try {
    db = await connect({ cluster: o.cluster, timeoutMs: o.timeout });
  } catch (err) {
    if (!(err instanceof ClusterUnreachableError)) throw err;
    throw new CliError(`cannot reach the cluster of ${o.cluster}: ${err.message}. Is it running? \`shardpax status --cluster ${o.cluster}\` shows each node`);
  }
  try {
    return await op(db);
  } finally {
    await db.close();
  }
}

program
  .command('put <key> [value]')
  .description('store a value under a key: the value argument (UTF-8 text unless --hex/--base64), a file, or stdin')
  .option(...clusterOption)
  .option(...timeoutOption)
  .addOption(hexOption())
  .addOption(base64Option())
  .option('--value-file <path>', "the value is this file's bytes")
  .option('--stdin', 'the value is the bytes read from stdin')
  .action(async (keyArg: string, valueArg: string | undefined, o: KvOptions & { valueFile?: string; stdin?: boolean }) => {
    const encoding = encodingOf(o);
    const key = keyFromArg(keyArg, encoding);
    const value = await readValue(valueSource(valueArg, o), encoding);
    await withDb(o, (db) => db.put(key, value));
  });

program
  .command('get <key>')
  .description(`print the value under a key, its exact bytes unless --hex/--base64 (exit code ${EXIT_NO_VALUE} when there is none)`)
  .option(...clusterOption)
  .option(...timeoutOption)
  .addOption(hexOption())
  .addOption(base64Option())
  .action(async (keyArg: string, o: KvOptions) => {
    const encoding = encodingOf(o);
    const key = keyFromArg(keyArg, encoding);
    const v = await withDb(o, (db) => db.get(key));
    if (v === undefined) {
      console.error(`(no value for ${JSON.stringify(key)})`);
      process.exitCode = EXIT_NO_VALUE;
      return;
    }
    process.stdout.write(formatValue(v, encoding));
    if (process.stdout.isTTY && encoding === 'text') process.stdout.write('\n');
  });

program
  .command('del <key>')
  .description('delete a key')
  .option(...clusterOption)
  .option(...timeoutOption)
  .addOption(hexOption())
  .addOption(base64Option())
  .action((keyArg: string, o: KvOptions) => {
    const key = keyFromArg(keyArg, encodingOf(o));
    return withDb(o, (db) => db.delete(key));
  });

const UINT32_MAX = 0xffff_ffff;
type AdminOptions = { cluster: string; timeout: number };

program
  .command('config')
  .description("show a shard master config: each group's servers and shard count, and the shard -> group map")
  .option('--num <n>', 'which config (default: the latest)', int(0, Number.MAX_SAFE_INTEGER))
  .option('--json', 'print JSON')
  .option(...clusterOption)
  .option(...timeoutOption)
  .action((o: AdminOptions & { num?: number; json?: boolean }) => runConfig(o));

program
  .command('join <group> <node...>')
  .description('a KV group joins the shard master with its nodes and takes its share of the shards')
  .option(...clusterOption)
  .option(...timeoutOption)
  .action((group: string, nodes: string[], o: AdminOptions) => runJoin({ ...o, group: intArgument('group', group), nodes }));

program
  .command('leave <group>')
  .description('a KV group leaves: its shards go to the other groups')
  .option(...clusterOption)
  .option(...timeoutOption)
  .action((group: string, o: AdminOptions) => runLeave({ ...o, group: intArgument('group', group) }));

program
  .command('move <shard> <group>')
  .description('move one shard to a group (pinned there until the next join or leave)')
  .option(...clusterOption)
  .option(...timeoutOption)
  .action((shard: string, group: string, o: AdminOptions) => runMove({ ...o, shard: intArgument('shard', shard), group: intArgument('group', group) }));

/** A whole-number argument; the shard master checks its range (and says so with its own error). */
function intArgument(name: string, v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n > UINT32_MAX) throw new CliError(`${name} must be a whole number, got ${JSON.stringify(v)}`);
  return n;
}

program
  .command('status')
  .description('show every node and its replica of each group it hosts: leadership, decided and applied slots')
  .option(...clusterOption)
  .option('--json', 'print JSON')
  .action(async (o: { cluster: string; json?: boolean }) => {
    const cluster = loadClusterConfig(o.cluster);
    const rows = await Promise.all(
      cluster.nodes.map(async (n) => {
        try {
          return { reachable: true as const, ...(await fetchStatus(n.address, 2_000, cluster.clusterId)) };
        } catch (err) {
          const groups = groupsOf(cluster, n.id).map((g) => g.id);
          return { node: n.id, address: n.address, groups, reachable: false as const, error: (err as Error).message };
        }
      }),
    );
    if (o.json) console.log(JSON.stringify(rows, null, 2));
    else for (const r of rows) console.log(r.reachable ? describe(r) : `${r.node}  ${r.address}  unreachable: ${r.error}  (hosts groups ${r.groups.join(', ')})`);
    if (!rows.some((r) => r.reachable)) throw new CliError(`no node of ${o.cluster} answered: is the cluster running?`);
  });

/** A node's line, then a line per group it hosts. */
function describe(s: NodeStatus): string {
  const invalid = Object.values(s.invalidMessages).reduce((a, b) => a + b, 0);
  const dropped = invalid > 0 ? `  dropped ${invalid} invalid inputs (--json: invalidMessages)` : '';
  const lines = [`${s.node}  ${s.address}  pid ${s.pid}${dropped}`];
  for (const g of s.groups) {
    const role = g.leader ? 'leader' : `follower (leader: ${g.knownLeader || 'unknown'})`;
    const transfer = g.transferSource ? `  receiving state from ${g.transferSource} (${g.transferProgress})` : '';
    lines.push(`  group ${g.group}  ${role}  decided<${g.decidedBelow}  applied<${g.appliedBelow}  log from ${g.logStart}${transfer}${g.rebuilding ? `  ${g.rebuilding}` : ''}`);
  }
  return lines.join('\n');
}

program.parseAsync().catch((err: unknown) => {
  const { message, exitCode } = failure(err);
  console.error(`error: ${message}`);
  process.exit(exitCode);
});
