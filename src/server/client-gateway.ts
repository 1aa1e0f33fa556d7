// Edge between the unary client API (KvService.Submit) and a node's protocol
// messages. Each call enters the node as a ClientCommand from a one-call
// client id; the ClientResult the node sends to that id completes the call.
// A retried command arrives as a new call; the node answers the newest.
import * as grpc from '@grpc/grpc-js';
import { type NodeId, nodeId } from '../core/ids.js';
import type { Transport } from '../core/transport.js';
import type * as wire from '../gen/shardpax/v1/session.js';
import type { GroupMessage } from '../kv/group-server.js';
import { amoCommandFromWire, amoResultToWire } from '../rpc/codec.js';

type Callback = grpc.sendUnaryData<wire.AmoResult>;

/** A call the node never answers (its leader died, say) is ended here at the latest. */
const MAX_CALL_MS = 30_000;

export class ClientGateway implements Transport<GroupMessage> {
  private handler: (from: NodeId, message: GroupMessage) => void = () => {};
  private readonly calls = new Map<NodeId, { callback: Callback; timer: NodeJS.Timeout }>();
  private nextCall = 0;
  private inner!: Transport<GroupMessage>;

  private constructor() {}

  /** Builds the gateway; `serve` starts the transport it wraps, serving the gateway's KvService too. */
  static async start(
    serve: (service: grpc.UntypedServiceImplementation) => Promise<Transport<GroupMessage>>,
  ): Promise<ClientGateway> {
    const g = new ClientGateway();
    g.inner = await serve(g.service);
    return g;
  }

  /** The KvService implementation. */
  private readonly service: grpc.UntypedServiceImplementation = {
    submit: (call: grpc.ServerUnaryCall<wire.AmoCommand, wire.AmoResult>, callback: Callback) => {
      let command;
      try {
        command = amoCommandFromWire(call.request);
      } catch (err) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: `malformed command: ${String(err)}` });
        return;
      }
      const id = nodeId(`rpc:${this.nextCall++}`);
      const timer = setTimeout(() => this.end(id, { code: grpc.status.UNAVAILABLE, details: 'not answered in time' }), MAX_CALL_MS);
      this.calls.set(id, { callback, timer });
      call.on('cancelled', () => this.end(id));
      this.handler(id, { type: 'ClientCommand', command });
    },
  };

  send(to: NodeId, messages: readonly GroupMessage[]): void {
    const call = this.calls.get(to);
    if (call === undefined) {
      this.inner.send(to, messages);
      return;
    }
    for (const m of messages) {
      if (m.type !== 'ClientResult') continue;
      this.end(to);
      call.callback(null, amoResultToWire(m.result));
      return;
    }
  }

  onReceive(handler: (from: NodeId, message: GroupMessage) => void): void {
    this.handler = handler;
    this.inner.onReceive(handler);
  }

  async close(): Promise<void> {
    for (const id of [...this.calls.keys()]) this.end(id, { code: grpc.status.UNAVAILABLE, details: 'server stopping' });
    await this.inner.close();
  }

  private end(id: NodeId, error?: Partial<grpc.StatusObject>): void {
    const call = this.calls.get(id);
    if (call === undefined) return;
    clearTimeout(call.timer);
    this.calls.delete(id);
    if (error !== undefined) call.callback(error);
  }
}
