// How a client call names its cluster (DESIGN.md 3: clients and nodes check
// the cluster id on every connection), shared by the SDK that sends it and the
// node that checks it. The wire contract is documented in proto/client.proto.

/** Request metadata: the cluster id of the caller's cluster file. */
export const CLUSTER_ID_METADATA = 'shardpax-cluster-id';

/** Trailer of a refused call: the cluster the node belongs to. */
export const NODE_CLUSTER_ID_METADATA = 'shardpax-node-cluster-id';

/** The refusal's text, the same on both sides: what happened and what to do. */
export function wrongClusterMessage(nodeClusterId: string, callerClusterId: string): string {
  return (
    `this node belongs to cluster ${nodeClusterId}, the cluster file says ${callerClusterId}: ` +
    'the file points at a node of another cluster (check its addresses, or use the right cluster file)'
  );
}
