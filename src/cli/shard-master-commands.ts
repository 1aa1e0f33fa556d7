// The shard master's commands of `shardpax`: `config` shows a configuration
// (the shard -> group map and per-group counts), `join`, `leave` and `move`
// change it. They only change the shard master's configs: KV groups do not act
// on them yet. A refusal (an unknown group, a shard out of range, ...) and an
// unreachable shard master end the command with one clear line and exit 1.
import { ClusterUnreachableError, OperationTimeoutError, ShardMasterError } from '../client/errors.js';
import { connectShardMaster, type ShardMasterAdmin } from '../client/shard-master-admin.js';
import { loadClusterConfig, SHARD_MASTER_GROUP } from '../runtime/cluster-config.js';
import { type ShardConfig, shardCounts, sortedGroupIds } from '../shardmaster/config.js';
import { CliError, EXIT_FAILED, EXIT_OUTCOME_UNKNOWN } from './cli-error.js';

export interface ShardMasterOptions {
  readonly cluster: string;
  readonly timeout: number;
}

/** Connects to the shard master of `o.cluster`, runs `op`, and always closes. */
async function withShardMaster<T>(o: ShardMasterOptions, op: (admin: ShardMasterAdmin) => Promise<T>): Promise<T> {
  const cluster = loadClusterConfig(o.cluster);
  let admin: ShardMasterAdmin;
  try {
    admin = await connectShardMaster({ cluster: o.cluster, timeoutMs: o.timeout });
  } catch (err) {
    if (!(err instanceof ClusterUnreachableError)) throw err;
    const nodes = cluster.groups.find((g) => g.id === SHARD_MASTER_GROUP)?.nodes.join(', ') ?? '';
    throw new CliError(
      `cannot reach the shard master (group 0, on ${nodes}) of ${o.cluster}: ${err.message}. ` +
        `Is the cluster running? \`shardpax status --cluster ${o.cluster}\` shows each node`,
    );
  }
  try {
    return await op(admin);
  } catch (err) {
    if (err instanceof ShardMasterError) throw new CliError(`the shard master refused: ${err.message} (${err.code})`);
    if (err instanceof OperationTimeoutError) {
      // Its own message says whether a change may still apply; `config` tells.
      const check = err.mayHaveTakenEffect ? `; \`shardpax config --cluster ${o.cluster}\` shows whether it did` : '';
      throw new CliError(`the shard master (group 0) did not answer: ${err.message}${check}`, err.mayHaveTakenEffect ? EXIT_OUTCOME_UNKNOWN : EXIT_FAILED);
    }
    throw err;
  } finally {
    await admin.close();
  }
}

/** `shardpax config [--num N] [--json]`. */
export async function runConfig(o: ShardMasterOptions & { readonly num?: number; readonly json?: boolean }): Promise<void> {
  const config = await withShardMaster(o, (admin) => admin.query(o.num));
  console.log(o.json === true ? JSON.stringify(configJson(config), null, 2) : describeConfig(config));
}

/**
 * `shardpax join <group> <node...>`: the group must be one the cluster file
 * places, on exactly these nodes (shards sent to a group nobody runs would be
 * served by nobody).
 */
export async function runJoin(o: ShardMasterOptions & { readonly group: number; readonly nodes: readonly string[] }): Promise<void> {
  const cluster = loadClusterConfig(o.cluster);
  const unknown = o.nodes.filter((n) => !cluster.nodes.some((x) => x.id === n));
  if (unknown.length > 0) {
    throw new CliError(`no node ${unknown.join(', ')} in ${o.cluster} (its nodes: ${cluster.nodes.map((n) => n.id).join(', ')})`);
  }
  const placed = cluster.groups.find((g) => g.id === o.group);
  if (placed === undefined) {
    const kv = cluster.groups.filter((g) => g.id !== SHARD_MASTER_GROUP).map((g) => g.id);
    throw new CliError(
      `group ${o.group} is not in ${o.cluster} (its KV groups: ${kv.join(', ') || 'none'}): ` +
        'a group joins once the cluster file places it on its nodes',
    );
  }
  const sameNodes = placed.nodes.length === new Set(o.nodes).size && placed.nodes.every((n) => o.nodes.includes(n));
  if (!sameNodes) throw new CliError(`group ${o.group} is on ${placed.nodes.join(', ')} in ${o.cluster}: join it with those nodes`);
  const num = await withShardMaster(o, (admin) => admin.join(o.group, o.nodes));
  console.log(`group ${o.group} joined on ${o.nodes.join(', ')}: config ${num}`);
}

/** `shardpax leave <group>`. */
export async function runLeave(o: ShardMasterOptions & { readonly group: number }): Promise<void> {
  const num = await withShardMaster(o, (admin) => admin.leave(o.group));
  console.log(`group ${o.group} left, its shards went to the others: config ${num}`);
}

/** `shardpax move <shard> <group>`. */
export async function runMove(o: ShardMasterOptions & { readonly shard: number; readonly group: number }): Promise<void> {
  const num = await withShardMaster(o, (admin) => admin.move(o.shard, o.group));
  console.log(`shard ${o.shard} moved to group ${o.group} (pinned there until the next join or leave): config ${num}`);
}

/** A config as JSON: the owner of each shard (null while no group exists), each group's servers and shard count, the pins. */
export function configJson(c: ShardConfig): Record<string, unknown> {
  const counts = shardCounts(c);
  return {
    num: c.num,
    shards: c.shards.map((g) => g ?? null),
    groups: sortedGroupIds(c).map((g) => ({ id: g, servers: c.groups.get(g) ?? [], shards: counts.get(g) ?? 0 })),
    pinned: [...c.pinned].sort((a, b) => a - b),
  };
}

/** A config in a few lines: per group its shard count, servers and shards (as ranges). */
function describeConfig(c: ShardConfig): string {
  const counts = shardCounts(c);
  const lines = [`config ${c.num}: ${c.shards.length} shards, ${c.groups.size} groups`];
  if (c.groups.size === 0) lines.push('no group has joined: every shard is unassigned (`shardpax join <group> <node...>`)');
  for (const g of sortedGroupIds(c)) {
    const owned = c.shards.flatMap((owner, shard) => (owner === g ? [shard] : []));
    lines.push(`  group ${g}  ${counts.get(g) ?? 0} shards  servers ${(c.groups.get(g) ?? []).join(', ')}`);
    lines.push(`    shards ${ranges(owned) || 'none'}`);
  }
  if (c.pinned.size > 0) lines.push(`pinned by a move until the next join or leave: ${ranges([...c.pinned].sort((a, b) => a - b))}`);
  return lines.join('\n');
}

/** Ascending numbers as runs: "0-4, 7, 9-10". */
function ranges(ns: readonly number[]): string {
  const out: string[] = [];
  let from: number | undefined;
  ns.forEach((n, i) => {
    from ??= n;
    if (ns[i + 1] === n + 1) return;
    out.push(from === n ? `${n}` : `${from}-${n}`);
    from = undefined;
  });
  return out.join(', ');
}
