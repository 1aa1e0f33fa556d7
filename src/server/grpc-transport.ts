// gRPC adapter of the Transport port (DESIGN.md 1, 3). One bidirectional
// stream per peer pair: of two servers the one with the smaller id dials; a
// node with no address of its own (a client) dials every server it talks to
// and is answered on the same stream. Messages queue per peer (bounded: the
// oldest are dropped past the bound, which the protocols tolerate) and leave
// as frames of many messages, at most one write in flight per stream.
import * as grpc from '@grpc/grpc-js';
import { assert } from '../core/assert.js';
import { type NodeId, nodeId } from '../core/ids.js';
import type { Transport } from '../core/transport.js';
import { type PeerFrame, type PeerMessage, PeerServiceClient, PeerServiceService } from '../gen/shardpax/v1/peer.js';

/** Maps a layer's messages to and from the wire's PeerMessage. */
export interface WireCodec<M> {
  toWire(message: M): PeerMessage;
  fromWire(message: PeerMessage): M;
}

export interface GrpcTransportOptions<M> {
  readonly self: NodeId;
  /** host:port to serve on (port 0 picks one); a client leaves it out. */
  readonly listen?: string;
  /** Addresses of the nodes this one may dial. */
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly codec: WireCodec<M>;
  /** Per-peer queue bound, in messages. */
  readonly maxQueue?: number;
  /** Most messages in one frame. */
  readonly maxFrame?: number;
  /** Further services (client, admin) served on the same port. */
  readonly services?: ReadonlyArray<{
    readonly definition: grpc.ServiceDefinition;
    readonly implementation: grpc.UntypedServiceImplementation;
  }>;
}

type Stream = grpc.ClientDuplexStream<PeerFrame, PeerFrame> | grpc.ServerDuplexStream<PeerFrame, PeerFrame>;

interface PeerLink {
  queue: PeerMessage[];
  stream: Stream | undefined;
  client: PeerServiceClient | undefined;
  /** A write is in flight or the stream asked us to wait for 'drain'. */
  blocked: boolean;
  backoffMs: number;
  redial: NodeJS.Timeout | undefined;
}

const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2000;
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  // Reconnects are ours (with backoff); keep the channel's own short.
  'grpc.initial_reconnect_backoff_ms': MIN_BACKOFF_MS,
  'grpc.max_reconnect_backoff_ms': MAX_BACKOFF_MS,
};

export class GrpcTransport<M> implements Transport<M> {
  private readonly links = new Map<NodeId, PeerLink>();
  private handler: (from: NodeId, message: M) => void = () => {};
  private server: grpc.Server | undefined;
  private flushQueued = false;
  private closed = false;
  /** The port actually bound (useful with port 0). */
  port = 0;

  private constructor(private readonly options: GrpcTransportOptions<M>) {}

  static async start<M>(options: GrpcTransportOptions<M>): Promise<GrpcTransport<M>> {
    const t = new GrpcTransport(options);
    if (options.listen !== undefined) await t.listen(options.listen);
    for (const peer of options.peers.keys()) if (t.dials(peer)) t.dial(peer);
    return t;
  }

  onReceive(handler: (from: NodeId, message: M) => void): void {
    this.handler = handler;
  }

  send(to: NodeId, messages: readonly M[]): void {
    if (this.closed || to === this.options.self) return;
    const link = this.link(to);
    for (const m of messages) link.queue.push(this.options.codec.toWire(m));
    const excess = link.queue.length - (this.options.maxQueue ?? 10_000);
    if (excess > 0) {
      link.queue.splice(0, excess);
    }
    if (link.stream === undefined && link.redial === undefined && this.dials(to)) this.dial(to);
    this.queueFlush();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const link of this.links.values()) {
      if (link.redial !== undefined) clearTimeout(link.redial);
      link.stream?.end();
      link.client?.close();
    }
    const server = this.server;
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        // Streams from peers never end on their own: give them a moment, then cut them.
        const force = setTimeout(() => server.forceShutdown(), 500);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    }
  }

  private dials(peer: NodeId): boolean {
    if (!this.options.peers.has(peer)) return false;
    return this.options.listen === undefined || this.options.self < peer;
  }

  private async listen(address: string): Promise<void> {
    const server = new grpc.Server(CHANNEL_OPTIONS);
    server.addService(PeerServiceService, { exchange: (call: Stream) => this.accept(call) });
    for (const s of this.options.services ?? []) server.addService(s.definition, s.implementation);
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(new Error(`cannot listen on ${address}: ${err.message}`)) : resolve(port),
      );
    });
    this.server = server;
  }

  /** An inbound stream: its first frame names the dialer. */
  private accept(call: Stream): void {
    let peer: NodeId | undefined;
    call.on('data', (frame: PeerFrame) => {
      if (peer === undefined) {
        try {
          peer = nodeId(frame.from);
        } catch {
          call.destroy(new Error('first frame must name a valid node id'));
          return;
        }
        const link = this.link(peer);
        link.stream?.end();
        this.attach(link, call);
      }
      this.receive(peer, frame);
    });
    const detach = () => {
      if (peer !== undefined) this.detach(peer, call);
    };
    call.on('end', () => {
      detach();
      call.end();
    });
    call.on('error', detach);
    call.on('close', detach);
  }

  private dial(peer: NodeId): void {
    if (this.closed) return;
    const link = this.link(peer);
    link.redial = undefined;
    const address = this.options.peers.get(peer);
    assert(address !== undefined);
    link.client ??= new PeerServiceClient(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    const call = link.client.exchange();
    this.attach(link, call);
    call.write({ from: this.options.self, messages: [] }); // introduces us
    call.on('data', (frame: PeerFrame) => {
      link.backoffMs = MIN_BACKOFF_MS;
      this.receive(peer, frame);
    });
    const lost = () => {
      if (link.stream !== call) return;
      this.detach(peer, call);
      link.redial = setTimeout(() => this.dial(peer), link.backoffMs);
      link.backoffMs = Math.min(link.backoffMs * 2, MAX_BACKOFF_MS);
    };
    call.on('error', lost);
    call.on('end', lost);
    call.on('close', lost);
  }

  private attach(link: PeerLink, stream: Stream): void {
    link.stream = stream;
    link.blocked = false;
    stream.on('drain', () => {
      if (link.stream !== stream) return;
      link.blocked = false;
      this.queueFlush();
    });
    this.queueFlush();
  }

  private detach(peer: NodeId, stream: Stream): void {
    const link = this.links.get(peer);
    if (link?.stream === stream) link.stream = undefined;
  }

  private receive(from: NodeId, frame: PeerFrame): void {
    for (const w of frame.messages) {
      let m: M;
      try {
        m = this.options.codec.fromWire(w);
      } catch {
        continue; // a malformed message is dropped like a lost one
      }
      this.handler(from, m);
    }
  }

  private queueFlush(): void {
    if (this.flushQueued || this.closed) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      for (const link of this.links.values()) this.flushLink(link);
    });
  }

  private flushLink(link: PeerLink): void {
    const max = this.options.maxFrame ?? 512;
    while (link.stream !== undefined && !link.blocked && link.queue.length > 0) {
      const messages = link.queue.splice(0, max);
      const ok = link.stream.write({ from: this.options.self, messages });
      if (!ok) link.blocked = true;
    }
  }

  private link(peer: NodeId): PeerLink {
    let link = this.links.get(peer);
    if (link === undefined) {
      link = {
        queue: [],
        stream: undefined,
        client: undefined,
        blocked: false,
        backoffMs: MIN_BACKOFF_MS,
        redial: undefined,
      };
      this.links.set(peer, link);
    }
    return link;
  }
}
