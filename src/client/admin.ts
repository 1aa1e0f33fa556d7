// Admin API calls: a node's status. Calls name the caller's cluster when it
// is known; a node of another cluster refuses them (WrongClusterError).
import * as grpc from '@grpc/grpc-js';
import { AdminServiceClient, type GroupStatus, type NodeStatus } from '../gen/shardpax/v1/client.js';
import { CLUSTER_ID_METADATA } from '../runtime/cluster-id-metadata.js';
import { wrongCluster } from './wrong-cluster.js';

export type { GroupStatus, NodeStatus };

/** A node's status as the replica of one group: the node's own figures and that group's. */
export type ReplicaStatus = Omit<NodeStatus, 'groups'> & GroupStatus;

/** `s` as the replica of `group`; undefined when the node hosts no replica of it. */
export function replicaStatus(s: NodeStatus, group: number): ReplicaStatus | undefined {
  const { groups, ...node } = s;
  const g = groups.find((x) => x.group === group);
  return g === undefined ? undefined : { ...node, ...g };
}

/**
 * Asks one node for its status; rejects when it does not answer within
 * `timeoutMs`, and with a WrongClusterError when it belongs to a cluster
 * other than `clusterId` (left out: any cluster).
 */
export function fetchStatus(address: string, timeoutMs: number, clusterId?: string): Promise<NodeStatus> {
  const client = new AdminServiceClient(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (clusterId !== undefined) metadata.set(CLUSTER_ID_METADATA, clusterId);
  return new Promise<NodeStatus>((resolve, reject) => {
    client.status({}, metadata, { deadline: Date.now() + timeoutMs }, (err, status) => {
      client.close();
      if (err === null) {
        resolve(status);
        return;
      }
      const refused = clusterId === undefined ? undefined : wrongCluster(err, address, clusterId, false);
      reject(refused ?? new Error(`${address}: ${why(err, timeoutMs)}`));
    });
  });
}

/** grpc-js's reason in a few words: these end up in "cannot reach the cluster" messages. */
function why(err: grpc.ServiceError, timeoutMs: number): string {
  if (err.code === grpc.status.DEADLINE_EXCEEDED) return `no answer within ${timeoutMs} ms`;
  if (/ECONNREFUSED/.test(err.details)) return 'connection refused';
  return (err.details || err.message).replace(/\s*Resolution note:\s*$/, '');
}
