// One server process's node: a Paxos group server hosting the KV application,
// wired to LevelDB (its data folder) and gRPC (peer stream, client and admin
// services on one port).
import * as grpc from '@grpc/grpc-js';
import type { NodeId } from '../core/ids.js';
import { AdminServiceService, type NodeStatus } from '../gen/shardpax/v1/client.js';
import { KvApplication } from '../kv/kv-application.js';
import { serverWireCodec } from '../paxos/codec.js';
import type { ServerMessage, ServerTimer } from '../paxos/messages.js';
import { DEFAULT_PAXOS_TUNING, PAXOS_SPACES, PaxosServer } from '../paxos/paxos-server.js';
import { ClientGateway } from './client-gateway.js';
import { type ClusterConfig, findNode } from './cluster-config.js';
import { GrpcTransport } from './grpc-transport.js';
import { LevelStorage } from './level-storage.js';
import { NodeHost } from './node-host.js';

export type PaxosTuning = typeof DEFAULT_PAXOS_TUNING;

export interface ServerNode {
  readonly id: NodeId;
  status(): NodeStatus;
  close(): Promise<void>;
}

export async function startServerNode(
  cluster: ClusterConfig,
  id: string,
  tuning: Partial<PaxosTuning> = {},
): Promise<ServerNode> {
  const { group, node } = findNode(cluster, id);
  const members = group.nodes.map((n) => n.id);
  const storage = await LevelStorage.open(node.dataDir, PAXOS_SPACES);
  let server: PaxosServer | undefined;
  const status = (): NodeStatus => {
    if (server === undefined) throw new Error('node not started');
    const leader = server.leader.knownLeader();
    return {
      node: node.id,
      group: group.id,
      address: node.address,
      pid: process.pid,
      leader: server.leader.isActive(),
      knownLeader: leader ?? '',
      ballotRound: server.leader.currentBallot().round,
      decidedBelow: server.replica.knownDecidedBelow(),
      appliedBelow: server.replica.firstUnapplied(),
      snapshotSlot: server.replica.compactedBelow(),
      logEntries: server.replica.logSize(),
      acceptedEntries: server.acceptor.acceptedCount(),
      rssBytes: process.memoryUsage.rss(),
      syncedWrites: host.stats.syncedWrites,
    };
  };
  const gateway = await ClientGateway.start((kv) =>
    GrpcTransport.start<ServerMessage>({
      self: node.id,
      listen: node.address,
      peers: new Map(group.nodes.filter((n) => n.id !== node.id).map((n) => [n.id, n.address])),
      codec: serverWireCodec,
      services: [{ definition: AdminServiceService, implementation: adminService(status) }, kv],
    }),
  ).catch(async (err: unknown) => {
    await storage.close();
    throw err;
  });
  const host = await NodeHost.start<ServerMessage, ServerTimer>({
    id: node.id,
    factory: (env, stored) =>
      (server = new PaxosServer(
        env,
        { ...DEFAULT_PAXOS_TUNING, ...tuning, self: node.id, members },
        new KvApplication(),
        stored,
      )),
    storage,
    transport: gateway,
  });
  return { id: node.id, status, close: () => host.close() };
}

function adminService(status: () => NodeStatus): grpc.UntypedServiceImplementation {
  return {
    status: (_call: grpc.ServerUnaryCall<unknown, NodeStatus>, callback: grpc.sendUnaryData<NodeStatus>) => {
      try {
        callback(null, status());
      } catch (err) {
        callback({ code: grpc.status.UNAVAILABLE, details: String(err) });
      }
    },
  };
}
