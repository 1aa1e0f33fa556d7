// Edge between the unary client API (KvService.Submit) and a node's protocol
// messages. Each call names a group; it enters the node as a ClientCommand
// for that group's replica from a one-call client id, and the ClientResult
// the node sends to that id completes the call. A retried command arrives as
// a new call; the node answers the newest. A call for a group this node does
// not host is refused with NOT_FOUND, naming the group and the node.
//
// Memory. grpc-js writes an answer into its HTTP/2 stream at once; bytes the
// client's flow-control window does not admit stay in this process until the
// client reads, so a client that stops reading would hold every answer it
// asked for. The gateway counts the bytes of answers not yet flushed, per
// client connection and in all, and past either bound refuses calls (and
// answers) with RESOURCE_EXHAUSTED. The SDK takes a failed call for a lost
// one and retries it; the exactly-once layer answers the retry from its
// table, so refusing even an executed command is safe. Per connection, the
// HTTP/2 stream limit (MAX_STREAMS_PER_CONNECTION) bounds the calls in flight,
// and flow control the request bytes a non-reading client can still send.
//
// Identity. Every call must name the node's cluster (cluster-guard.ts); a
// call from a client of another cluster is refused before it is decoded.
import * as grpc from '@grpc/grpc-js';
import { assert } from '../core/assert.js';
import { type GroupId, groupId, type NodeId, nodeId, type ShardId } from '../core/ids.js';
import type { Transport } from '../core/transport.js';
import { KvServiceService, type SubmitRequest } from '../gen/shardpax/v1/client.js';
import * as wire from '../gen/shardpax/v1/session.js';
import type { NodeMessage } from '../paxos/group-env.js';
import type { GroupMessage } from '../paxos/group-server.js';
import { amoCommandFromWire, amoResultToWire, wireShard } from '../rpc/codec.js';
import type { AmoResult } from '../rpc/messages.js';
import { clusterRefusal } from './cluster-guard.js';
import { MAX_WIRE_MESSAGE_BYTES } from './grpc-transport.js';

/** Answers travel pre-encoded: the gateway encodes each once and knows its size. */
type Callback = grpc.sendUnaryData<Buffer>;
type Call = grpc.ServerUnaryCall<SubmitRequest, Buffer>;
type Message = NodeMessage<GroupMessage>;

/** The node behind a gateway: who it is, and the groups it hosts a replica of. */
export interface GatewayNode {
  readonly id: NodeId;
  readonly groups: readonly GroupId[];
}

const MIB = 1024 * 1024;
/** A call the node never answers (its leader died, say) is ended here at the latest. */
const MAX_CALL_MS = 30_000;
/**
 * An answer counts as unflushed until grpc-js reports its call over: it emits
 * 'cancelled' once the trailers went out after the message was written
 * (server-interceptors.js, sendStatus -> notifyOnCancel) or when the stream
 * closes. The server's keepalive closes a connection that stopped reading
 * within ~15 s; should the event still never come, the bytes stop counting
 * after this long rather than shutting clients out for good.
 */
const MAX_UNFLUSHED_MS = 60_000;
/** gRPC's length-prefixed message framing (flag byte + 4-byte length). */
const GRPC_MESSAGE_PREFIX_BYTES = 5;
export const DEFAULT_MAX_UNFLUSHED_BYTES_PER_CONNECTION = 8 * MIB;
export const DEFAULT_MAX_UNFLUSHED_BYTES = 64 * MIB;

export interface GatewayLimits {
  /** Answer bytes one client connection may leave unread. */
  readonly maxUnflushedBytesPerConnection: number;
  /** Answer bytes all client connections together may leave unread. */
  readonly maxUnflushedBytes: number;
}

export interface GatewayStats {
  /** Calls refused on arrival, and answered calls whose answer was refused (both only grow). */
  readonly refusedCalls: number;
  readonly refusedAnswers: number;
  /** Answer bytes written but not yet known flushed, and the connections holding them. */
  readonly unflushedBytes: number;
  readonly unflushedConnections: number;
}

/** KvService with pre-encoded answers; same path and bytes on the wire as the generated one. */
const KV_SERVICE: grpc.ServiceDefinition = {
  submit: { ...KvServiceService.submit, responseSerialize: (answer: Buffer): Buffer => answer },
};

interface PendingCall {
  readonly call: Call;
  readonly callback: Callback;
  readonly timer: NodeJS.Timeout;
  readonly peer: string;
}

export class ClientGateway implements Transport<Message> {
  private handler: (from: NodeId, message: Message) => void = () => {};
  /** Calls waiting for the node's answer. */
  private readonly calls = new Map<NodeId, PendingCall>();
  /** Unflushed answer bytes per client connection (call.getPeer()); absent when none. */
  private readonly unflushedByPeer = new Map<string, number>();
  private unflushedBytes = 0;
  private refusedCalls = 0;
  private refusedAnswers = 0;
  private nextCall = 0;
  private inner!: Transport<Message>;

  private constructor(
    private readonly clusterId: string,
    private readonly node: GatewayNode,
    private readonly limits: GatewayLimits,
  ) {
    assert(
      limits.maxUnflushedBytesPerConnection >= MAX_WIRE_MESSAGE_BYTES &&
        limits.maxUnflushedBytes >= limits.maxUnflushedBytesPerConnection,
      'gateway limits must admit one answer of the largest wire size per connection',
    );
  }

  /**
   * Builds the gateway of `node` of cluster `clusterId`; `serve` starts the
   * transport it wraps, serving the gateway's KvService too.
   */
  static async start(
    clusterId: string,
    node: GatewayNode,
    serve: (kvService: {
      readonly definition: grpc.ServiceDefinition;
      readonly implementation: grpc.UntypedServiceImplementation;
    }) => Promise<Transport<Message>>,
    limits: Partial<GatewayLimits> = {},
  ): Promise<ClientGateway> {
    const g = new ClientGateway(clusterId, node, {
      maxUnflushedBytesPerConnection: limits.maxUnflushedBytesPerConnection ?? DEFAULT_MAX_UNFLUSHED_BYTES_PER_CONNECTION,
      maxUnflushedBytes: limits.maxUnflushedBytes ?? DEFAULT_MAX_UNFLUSHED_BYTES,
    });
    g.inner = await serve({ definition: KV_SERVICE, implementation: { submit: g.submit } });
    return g;
  }

  get stats(): GatewayStats {
    return {
      refusedCalls: this.refusedCalls,
      refusedAnswers: this.refusedAnswers,
      unflushedBytes: this.unflushedBytes,
      unflushedConnections: this.unflushedByPeer.size,
    };
  }

  /** KvService.Submit. */
  private readonly submit = (call: Call, callback: Callback): void => {
    const wrongCluster = clusterRefusal(call.metadata, this.clusterId, true);
    if (wrongCluster !== undefined) {
      callback(wrongCluster);
      return;
    }
    const group = groupId(call.request.group); // a uint32
    if (!this.node.groups.includes(group)) {
      const hosted = this.node.groups.length === 0 ? 'none' : this.node.groups.join(', ');
      callback({
        code: grpc.status.NOT_FOUND,
        details: `node ${this.node.id} does not host group ${group} (it hosts groups: ${hosted}); check the cluster file`,
      });
      return;
    }
    let command;
    let shard;
    try {
      if (call.request.command === undefined) throw new Error('no command');
      command = amoCommandFromWire(call.request.command);
      shard = wireShard(call.request.command.shard);
    } catch (err) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: `malformed command: ${String(err)}` });
      return;
    }
    const peer = call.getPeer();
    // Admitted while the connection and the server have room left; the answer is checked again.
    const refusal = this.refusal(peer, 1);
    if (refusal !== undefined) {
      this.refusedCalls++;
      callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: refusal });
      return;
    }
    const id = nodeId(`rpc:${this.nextCall++}`);
    const timer = setTimeout(() => this.end(id, { code: grpc.status.UNAVAILABLE, details: 'not answered in time' }), MAX_CALL_MS);
    this.calls.set(id, { call, callback, timer, peer });
    call.on('cancelled', () => this.end(id));
    this.handler(id, { group, message: { type: 'ClientCommand', shard, command } });
  };

  send(to: NodeId, messages: readonly Message[]): void {
    const call = this.calls.get(to);
    if (call === undefined) {
      // A peer, or a call that ended already: the transport drops what is for neither a peer nor an open stream.
      this.inner.send(to, messages);
      return;
    }
    for (const { message: m } of messages) {
      if (m.type !== 'ClientResult') continue;
      this.end(to);
      this.answer(call, m.shard, m.result);
      return;
    }
  }

  onReceive(handler: (from: NodeId, message: Message) => void): void {
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

  /** Why `bytes` more of answers to `peer` cannot be held now; undefined if they can. */
  private refusal(peer: string, bytes: number): string | undefined {
    const ofPeer = this.unflushedByPeer.get(peer) ?? 0;
    if (ofPeer + bytes > this.limits.maxUnflushedBytesPerConnection) {
      return `this connection has ${ofPeer} bytes of answers unread (bound ${this.limits.maxUnflushedBytesPerConnection}); read them, then retry`;
    }
    if (this.unflushedBytes + bytes > this.limits.maxUnflushedBytes) {
      return `server holds ${this.unflushedBytes} bytes of unread answers (bound ${this.limits.maxUnflushedBytes}); retry later`;
    }
    return undefined;
  }

  private answer(call: PendingCall, shard: ShardId, result: AmoResult): void {
    const encoded = wire.AmoResult.encode(amoResultToWire(result, shard)).finish();
    const answer = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    const bytes = answer.length + GRPC_MESSAGE_PREFIX_BYTES;
    const refusal = this.refusal(call.peer, bytes);
    if (refusal !== undefined) {
      this.refusedAnswers++;
      call.callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: refusal });
      return;
    }
    this.unflushed(call.peer, bytes);
    let flushed = false;
    const release = () => {
      if (flushed) return;
      flushed = true;
      clearTimeout(timer);
      this.unflushed(call.peer, -bytes);
    };
    const timer = setTimeout(release, MAX_UNFLUSHED_MS);
    call.call.once('cancelled', release);
    call.callback(null, answer);
  }

  private unflushed(peer: string, delta: number): void {
    const ofPeer = (this.unflushedByPeer.get(peer) ?? 0) + delta;
    this.unflushedBytes += delta;
    assert(ofPeer >= 0 && this.unflushedBytes >= 0);
    if (ofPeer === 0) this.unflushedByPeer.delete(peer);
    else this.unflushedByPeer.set(peer, ofPeer);
  }
}
