// One server process's node: one replica of each group the cluster file places
// on it (a group server: Paxos hosting the group's application, the shard
// master's for group 0 and the KV application for the others), all behind
// one GroupMux in one NodeHost (one ready batch, one fsync per flush), wired
// to LevelDB (its data folder, each group under its own prefix) and gRPC
// (one peer stream per other node of the cluster, client and admin services on
// one port). KV groups are sharded (src/kv/group-server.ts): their leaders ask
// the shard master for configs and pull shards from other groups' replicas,
// so any two nodes may exchange messages. It runs only on storage whose identity record names
// this node of this cluster (node-storage.ts), or on a fresh store made by
// `rebuild`. Invalid input the transport and the group server drop is counted
// in its status and logged at most every 10 s (drop-log.ts).
import * as grpc from '@grpc/grpc-js';
import type { DropCounter } from '../core/drop-counter.js';
import type { Env } from '../core/env.js';
import type { GroupId, NodeId } from '../core/ids.js';
import type { StoredState } from '../core/storage.js';
import { AdminServiceService, type GroupStatus, type NodeStatus } from '../gen/shardpax/v1/client.js';
import { DEFAULT_SHARDING_TUNING, KvGroupServer } from '../kv/group-server.js';
import type { NodeMessage, NodeTimer } from '../paxos/group-env.js';
import { GroupMux, groupSpaces } from '../paxos/group-mux.js';
import {
  DEFAULT_GROUP_TUNING,
  GROUP_PRELOAD,
  GROUP_SPACES,
  type GroupMessage,
  type GroupServer,
  type GroupTimer,
} from '../paxos/group-server.js';
import { nodeWireCodec } from '../paxos/group-wire.js';
import { MAX_BATCH_COMMANDS } from '../paxos/limits.js';
import { DEFAULT_PAXOS_TUNING } from '../paxos/paxos-server.js';
import { ClientGateway } from './client-gateway.js';
import { type ClusterConfig, findNode, groupsOf, SHARD_MASTER_GROUP } from '../runtime/cluster-config.js';
import { ShardMasterApplication } from '../shardmaster/shard-master-application.js';
import { loadKeySharder } from '../shardmaster/key-shard.js';
import { ShardMasterServer } from '../shardmaster/shard-master-server.js';
import { DropLog } from './drop-log.js';
import { GrpcTransport } from './grpc-transport.js';
import { clusterRefusal } from './cluster-guard.js';
import { openNodeStorage, rebuildNodeStorage } from './node-storage.js';
import { encodeIdentity } from './node-identity.js';
import { NodeHost } from '../runtime/node-host.js';

type Message = NodeMessage<GroupMessage>;

export type PaxosTuning = typeof DEFAULT_PAXOS_TUNING & typeof DEFAULT_GROUP_TUNING;

/** Numeric tuning knobs by name, from JSON; throws a clear Error on anything else. */
export function parseTuning(json: string | undefined): Partial<PaxosTuning> {
  if (json === undefined || json === '') return {};
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`SHARDPAX_TUNING is not JSON: ${String(err)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('SHARDPAX_TUNING must be a JSON object');
  const defaults: Record<string, unknown> = { ...DEFAULT_PAXOS_TUNING, ...DEFAULT_GROUP_TUNING };
  const tuning: Record<string, number> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof defaults[key] !== 'number') throw new Error(`SHARDPAX_TUNING: unknown numeric knob ${JSON.stringify(key)}`);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw new Error(`SHARDPAX_TUNING: ${key} must be a positive integer, got ${JSON.stringify(value)}`);
    }
    tuning[key] = value;
  }
  if ((tuning.maxBatch ?? 0) > MAX_BATCH_COMMANDS) {
    throw new Error(`SHARDPAX_TUNING: maxBatch must be at most ${MAX_BATCH_COMMANDS}: peers refuse larger batches`);
  }
  return tuning;
}

export interface ServerNodeOptions {
  readonly tuning?: Partial<PaxosTuning>;
  /**
   * Replace the node's storage with a fresh one (the old folder is moved
   * aside) and rejoin in rebuild mode: for a node that lost its data.
   */
  readonly rebuild: boolean;
}

export interface ServerNode {
  readonly id: NodeId;
  /** The groups it hosts a replica of, by ascending id. */
  readonly groups: readonly GroupId[];
  /** In rebuild mode (some group's replica still rebuilding): started with `rebuild`, or its storage is still marked rebuilding from such a start. */
  readonly rebuilding: boolean;
  /** Where `rebuild` moved the old data folder; undefined when there was none to move. */
  readonly movedAside: string | undefined;
  status(): NodeStatus;
  close(): Promise<void>;
}

/** Starts a node; a StorageRefusedError when its storage is missing, empty, damaged or not its own. */
export async function startServerNode(
  cluster: ClusterConfig,
  id: string,
  options: ServerNodeOptions = { rebuild: false },
): Promise<ServerNode> {
  const node = findNode(cluster, id);
  const groups = groupsOf(cluster, node.id);
  const groupIds = groups.map((g) => g.id);
  // One stream per other node of the cluster: shard pulls and config queries cross groups.
  const peers = new Map(cluster.nodes.filter((n) => n.id !== node.id).map((n) => [n.id, n.address]));
  const clusterNodes: ReadonlySet<NodeId> = new Set(cluster.nodes.map((n) => n.id));
  const shardMasterNodes = cluster.groups.find((g) => g.id === SHARD_MASTER_GROUP)?.nodes ?? [];
  const spaces = groupSpaces(groupIds, GROUP_SPACES);
  const opened = options.rebuild
    ? await rebuildNodeStorage(cluster, node, spaces)
    : { ...(await openNodeStorage(cluster, node, spaces)), movedTo: undefined };
  const { storage, identity } = opened;
  const servers = new Map<GroupId, GroupServer>();
  let mux: GroupMux<GroupMessage, GroupTimer> | undefined;
  let transport: GrpcTransport<Message> | undefined;
  const dropCounters = (): DropCounter[] =>
    [transport?.invalid, mux?.invalid, ...[...servers.values()].map((s) => s.paxos.invalid)].filter((c) => c !== undefined);
  const status = (): NodeStatus => {
    if (mux === undefined) throw new Error('node not started');
    const mem = process.memoryUsage();
    return {
      node: node.id,
      address: node.address,
      pid: process.pid,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      arrayBuffersBytes: mem.arrayBuffers,
      droppedMessages: host.stats.droppedMessages,
      syncedWrites: host.stats.syncedWrites,
      clusterId: cluster.clusterId,
      invalidMessages: invalidByReason(dropCounters()),
      groups: [...servers].sort(([a], [b]) => a - b).map(([g, server]) => groupStatus(g, server)),
    };
  };
  const gateway = await ClientGateway.start(cluster.clusterId, { id: node.id, groups: groupIds }, async (kv) => {
    transport = await GrpcTransport.start<Message>({
      self: node.id,
      clusterId: cluster.clusterId,
      admits: (peer) => peers.has(peer),
      listen: node.address,
      peers,
      codec: nodeWireCodec,
      services: [{ definition: AdminServiceService, implementation: adminService(cluster.clusterId, status) }, kv],
    });
    return transport;
  }).catch(async (err: unknown) => {
    await storage.close();
    throw err;
  });
  const tuning = { ...DEFAULT_PAXOS_TUNING, ...DEFAULT_GROUP_TUNING, ...options.tuning };
  // xxhash-wasm loads asynchronously: the shard master's application and the key sharder are made before the host runs.
  const shardMaster = groupIds.includes(SHARD_MASTER_GROUP) ? await ShardMasterApplication.load(cluster.shards) : undefined;
  const sharder = await loadKeySharder(cluster.shards);
  const hosted = groups.map((g) => ({
    id: g.id,
    factory: (env: Env<GroupMessage, GroupTimer>, stored: StoredState) => {
      // A store made by --rebuild: each group's acceptor starts rebuilding (a durable mark of its own) and
      // votes only once that is safe (src/paxos/rejoin.ts). Ignored once it holds acceptor state.
      const config = { ...tuning, self: node.id, members: g.nodes, rebuild: identity.rebuilding };
      const server =
        g.id === SHARD_MASTER_GROUP && shardMaster !== undefined
          ? new ShardMasterServer(env, config, shardMaster, stored, {}, clusterNodes)
          : new KvGroupServer(env, config, stored, {}, {
              ...DEFAULT_SHARDING_TUNING,
              group: g.id,
              shards: cluster.shards,
              shardMaster: shardMasterNodes,
              clusterNodes,
              shardOf: (key) => sharder.shardOf(key),
            });
      servers.set(g.id, server);
      return server;
    },
  }));
  const host = await NodeHost.start<Message, NodeTimer<GroupTimer>>({
    id: node.id,
    factory: (env, stored) => (mux = new GroupMux(env, hosted, stored)),
    storage,
    preload: groupSpaces(groupIds, GROUP_PRELOAD),
    transport: gateway,
  });
  const rebuilding = () => [...servers.values()].some((s) => s.paxos.acceptor.rebuilding);
  if (identity.rebuilding && !rebuilding()) {
    // The rebuild finished in an earlier run, for every group: the identity record says so too.
    await storage.writeIdentity(encodeIdentity({ ...identity, rebuilding: false }));
  }
  const dropLog = new DropLog(`node ${node.id}`, dropCounters(), (line) => console.warn(line));
  const poll = setInterval(() => dropLog.poll(performance.now()), 1_000);
  poll.unref();
  const close = async () => {
    clearInterval(poll);
    await host.close();
  };
  return { id: node.id, groups: groupIds, rebuilding: rebuilding(), movedAside: opened.movedTo, status, close };
}

/** One replica's part of its node's status. */
function groupStatus(group: GroupId, server: GroupServer): GroupStatus {
  const { leader: l, replica, acceptor, receiver, sender } = server.paxos;
  const progress = receiver.progress();
  return {
    group,
    leader: l.leads(),
    knownLeader: l.knownLeader() ?? '',
    ballotRound: l.currentBallot().round,
    decidedBelow: replica.knownDecidedBelow(),
    appliedBelow: replica.firstUnapplied(),
    logStart: replica.logStart(),
    pendingDecisions: replica.pendingCount(),
    acceptedEntries: acceptor.acceptedCount(),
    transferSource: receiver.source() ?? '',
    transferProgress: progress === undefined ? '' : `${progress.space}/${JSON.stringify(progress.fromKey).slice(0, 40)}`,
    servingTransfers: sender.servingCount(),
    promisedRound: acceptor.ballot.round,
    promisedLeader: acceptor.ballot.leader,
    rebuilding: server.paxos.rejoin.describe(),
  };
}

/** Drops by reason, summed over `counters`. */
function invalidByReason(counters: readonly DropCounter[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const c of counters) for (const [reason, n] of c.byReason()) sum[reason] = (sum[reason] ?? 0) + n;
  return sum;
}

function adminService(clusterId: string, status: () => NodeStatus): grpc.UntypedServiceImplementation {
  return {
    status: (call: grpc.ServerUnaryCall<unknown, NodeStatus>, callback: grpc.sendUnaryData<NodeStatus>) => {
      const wrongCluster = clusterRefusal(call.metadata, clusterId, false);
      if (wrongCluster !== undefined) {
        callback(wrongCluster);
        return;
      }
      try {
        callback(null, status());
      } catch (err) {
        callback({ code: grpc.status.UNAVAILABLE, details: String(err) });
      }
    },
  };
}
