// Client side of the request/response API: a Transport that carries a
// session's commands as KvService.Submit calls, each for the replica group its
// message is tagged with, and hands each answer back as a message from that
// server, tagged with the same group. Failed or timed-out calls are dropped like lost
// messages: the session retransmits. Every call names the client's cluster; a
// node of another cluster refuses it, and that refusal is reported, not retried.
import * as grpc from '@grpc/grpc-js';
import type { NodeId } from '../core/ids.js';
import type { Transport } from '../core/transport.js';
import { KvServiceClient } from '../gen/shardpax/v1/client.js';
import { amoCommandToWire, amoResultFromWire, wireShard } from '../rpc/codec.js';
import type { RpcMessage } from '../rpc/messages.js';
import type { GroupTagged } from './shard-router.js';
import { CLUSTER_ID_METADATA } from '../runtime/cluster-id-metadata.js';
import type { WrongClusterError } from './errors.js';
import { wrongCluster } from './wrong-cluster.js';

export class UnaryClientTransport implements Transport<GroupTagged<RpcMessage>> {
  private readonly clients = new Map<NodeId, KvServiceClient>();
  private handler: (from: NodeId, m: GroupTagged<RpcMessage>) => void = () => {};
  private closed = false;

  private readonly metadata = new grpc.Metadata();

  constructor(
    /** Every node a command may go to. */
    private readonly endpoints: ReadonlyMap<NodeId, string>,
    private readonly callTimeoutMs: number,
    private readonly clusterId: string,
    /** A node refused a call because it belongs to another cluster. */
    private readonly onWrongCluster: (err: WrongClusterError) => void,
  ) {
    this.metadata.set(CLUSTER_ID_METADATA, clusterId);
    for (const [id, address] of endpoints) {
      // A channel of our own: grpc-js would otherwise share one connection among all clients of a process.
      this.clients.set(
        id,
        new KvServiceClient(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
      );
    }
  }

  send(to: NodeId, messages: readonly GroupTagged<RpcMessage>[]): void {
    const client = this.clients.get(to);
    if (client === undefined || this.closed) return;
    for (const { group, message: m } of messages) {
      if (m.type !== 'ClientCommand') continue;
      const options = { deadline: Date.now() + this.callTimeoutMs };
      client.submit({ group, command: amoCommandToWire(m.command, m.shard) }, this.metadata.clone(), options, (err, response) => {
        if (this.closed) return;
        if (err !== null) {
          const refused = wrongCluster(err, this.endpoints.get(to) ?? to, this.clusterId, true);
          if (refused !== undefined) this.onWrongCluster(refused);
          return;
        }
        try {
          const result: RpcMessage = { type: 'ClientResult', shard: wireShard(response.shard), result: amoResultFromWire(response) };
          this.handler(to, { group, message: result });
        } catch {
          // a malformed answer is treated as lost
        }
      });
    }
  }

  onReceive(handler: (from: NodeId, m: GroupTagged<RpcMessage>) => void): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
  }
}
