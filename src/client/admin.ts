// Admin API calls: a node's status.
import * as grpc from '@grpc/grpc-js';
import { AdminServiceClient, type NodeStatus } from '../gen/shardpax/v1/client.js';

export type { NodeStatus };

/** Asks one node for its status; rejects when it does not answer within `timeoutMs`. */
export function fetchStatus(address: string, timeoutMs: number): Promise<NodeStatus> {
  const client = new AdminServiceClient(address, grpc.credentials.createInsecure());
  return new Promise<NodeStatus>((resolve, reject) => {
    client.status({}, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, status) => {
      client.close();
      if (err !== null) reject(new Error(`${address}: ${why(err, timeoutMs)}`));
      else resolve(status);
    });
  });
}

/** grpc-js's reason in a few words: these end up in "cannot reach the cluster" messages. */
function why(err: grpc.ServiceError, timeoutMs: number): string {
  if (err.code === grpc.status.DEADLINE_EXCEEDED) return `no answer within ${timeoutMs} ms`;
  if (/ECONNREFUSED/.test(err.details)) return 'connection refused';
  return (err.details || err.message).replace(/\s*Resolution note:\s*$/, '');
}
