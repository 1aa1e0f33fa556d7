// Recognizes a node's refusal of a call that named another cluster
// (FAILED_PRECONDITION with the node's cluster id in a trailer, see
// proto/client.proto) and turns it into a WrongClusterError.
import * as grpc from '@grpc/grpc-js';
import { NODE_CLUSTER_ID_METADATA, wrongClusterMessage } from '../runtime/cluster-id-metadata.js';
import { WrongClusterError } from './errors.js';

/** The WrongClusterError `err` stands for, or undefined when it is another failure. */
export function wrongCluster(
  err: grpc.ServiceError,
  address: string,
  clusterId: string,
  mayHaveTakenEffect: boolean,
): WrongClusterError | undefined {
  if (err.code !== grpc.status.FAILED_PRECONDITION) return undefined;
  const [nodeCluster] = err.metadata.get(NODE_CLUSTER_ID_METADATA);
  if (typeof nodeCluster !== 'string') return undefined;
  return new WrongClusterError(`${address}: ${wrongClusterMessage(nodeCluster, clusterId)}`, mayHaveTakenEffect, nodeCluster);
}
