// The node's side of the cluster id check on client and admin calls
// (DESIGN.md 3). A call whose metadata names another cluster is refused
// before it reaches the node, so a client whose cluster file points at the
// wrong cluster cannot write into it. The refusal carries the node's own
// cluster id in a trailer; the SDK turns it into a WrongClusterError.
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_ID_METADATA, NODE_CLUSTER_ID_METADATA, wrongClusterMessage } from '../runtime/cluster-id-metadata.js';

/**
 * Why a call with `metadata` must be refused by a node of `clusterId`, or
 * undefined when it may go on. `required`: a call that names no cluster is
 * refused too (client commands); otherwise it passes (an operator's probe).
 */
export function clusterRefusal(
  metadata: grpc.Metadata,
  clusterId: string,
  required: boolean,
): Partial<grpc.StatusObject> | undefined {
  const values = metadata.get(CLUSTER_ID_METADATA);
  if (values.length === 0) {
    if (!required) return undefined;
    return {
      code: grpc.status.INVALID_ARGUMENT,
      details: `the call names no cluster: send the cluster id of your cluster file as metadata ${CLUSTER_ID_METADATA}`,
    };
  }
  const [named] = values;
  if (values.length > 1 || typeof named !== 'string') {
    return { code: grpc.status.INVALID_ARGUMENT, details: `metadata ${CLUSTER_ID_METADATA} must be one text value` };
  }
  if (named === clusterId) return undefined;
  const trailer = new grpc.Metadata();
  trailer.set(NODE_CLUSTER_ID_METADATA, clusterId);
  return { code: grpc.status.FAILED_PRECONDITION, details: wrongClusterMessage(clusterId, named), metadata: trailer };
}
