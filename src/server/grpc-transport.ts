// gRPC adapter of the Transport port (DESIGN.md 1, 3). One bidirectional
// stream per peer pair: of two servers the one with the smaller id dials; a
// node with no address of its own (a client) dials every server it talks to
// and is answered on the same stream. Messages queue per peer, each encoded
// once when queued; the queue is bounded in messages and in bytes (the
// oldest are dropped past a bound, which the protocols tolerate) and leaves
// as frames bounded the same way, one write in flight per stream. So a slow
// or unreachable peer costs at most its queue plus one frame.
//
// Handshake: a stream carries messages only once both ends said hello (the
// first frame each way): the dialer names the cluster, itself and the node
// it dialed; the other end checks all three (and that the dialer may open a
// stream to it), answers in kind, and the dialer checks the answer. Anything
// else closes the stream. This identifies peers; it does not authenticate
// them. Everything received is then checked at the door: a frame that does
// not decode, names another sender than the stream's, or holds a message
// the codec refuses is counted in `invalid` and dropped, like a lost one.
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import * as grpc from '@grpc/grpc-js';
import { assert } from '../core/assert.js';
import { DropCounter } from '../core/drop-counter.js';
import { type NodeId, parseNodeId } from '../core/ids.js';
import type { Transport } from '../core/transport.js';
import { PeerFrame, type PeerMessage, PeerServiceService } from '../gen/shardpax/v1/peer.js';
import { WireError } from '../rpc/codec.js';
import { PeerQueue, takeFrame } from './frame-queue.js';
import { STREAM_WINDOW_BYTES, widenServerWindows } from './http2-windows.js';

/** Maps a layer's messages to and from the wire's PeerMessage. */
export interface WireCodec<M> {
  toWire(message: M): PeerMessage;
  /** Throws WireError for a message that is not valid; any other throw is a bug. */
  fromWire(message: PeerMessage): M;
}

const MIB = 1024 * 1024;

/**
 * Largest gRPC message this process sends or accepts, on every service it
 * serves (peer frames, client requests and answers) and on peer channels.
 * Values are at most 1 MiB and protocol messages are bounded below this, so
 * only a broken or hostile peer meets it.
 */
export const MAX_WIRE_MESSAGE_BYTES = 8 * MIB;
export const DEFAULT_MAX_QUEUE_MESSAGES = 10_000;
export const DEFAULT_MAX_QUEUE_BYTES = 32 * MIB;
export const DEFAULT_MAX_FRAME_MESSAGES = 512;
export const DEFAULT_MAX_FRAME_BYTES = 4 * MIB;
/**
 * Streams (calls) one connection may hold open on our server, as the HTTP/2
 * SETTINGS_MAX_CONCURRENT_STREAMS we announce: nghttp2 refuses streams past
 * it, and grpc-js clients hold further calls back until one ends. Above the
 * SDK's default window of 64 calls.
 */
export const MAX_STREAMS_PER_CONNECTION = 128;
/** A stream whose other end has not said a valid hello by then is closed. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000;

export interface GrpcTransportOptions<M> {
  readonly self: NodeId;
  /** The cluster both ends of every stream must name in their hello (ClusterConfig.clusterId). */
  readonly clusterId: string;
  /** Whether `peer` may open a stream to this node (a server: the members of its groups). */
  readonly admits: (peer: NodeId) => boolean;
  /** host:port to serve on (port 0 picks one); a client leaves it out. */
  readonly listen?: string;
  /** Addresses of the nodes this one may dial. */
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly codec: WireCodec<M>;
  /** Per-peer queue bound, in messages (default 10,000). */
  readonly maxQueueMessages?: number;
  /** Per-peer queue bound, in encoded bytes (default 32 MiB). */
  readonly maxQueueBytes?: number;
  /** Most messages in one frame (default 512). */
  readonly maxFrameMessages?: number;
  /** Most bytes of messages in one frame (default 4 MiB); a larger message goes alone. */
  readonly maxFrameBytes?: number;
  /** How long the other end of a new stream has to say hello (default 5 s). */
  readonly handshakeTimeoutMs?: number;
  /** Further services (client, admin) served on the same port. */
  readonly services?: ReadonlyArray<{
    readonly definition: grpc.ServiceDefinition;
    readonly implementation: grpc.UntypedServiceImplementation;
  }>;
}

/** Counters of what the transport dropped unsent; they only grow. */
export interface TransportStats {
  /** Messages dropped unsent: past a queue bound, or too large for any frame. */
  droppedMessages: number;
  droppedBytes: number;
  /** Of those, messages larger than a frame may be (a protocol bug). */
  oversizedMessages: number;
}

// Frames travel as bytes: we encode each message once, when it is queued, and
// build a frame by concatenating them after a header that names the sender
// (protobuf allows a message as concatenated fields). Same service path and
// bytes on the wire as the generated PeerService.
const bytesAsIs = (b: Buffer): Buffer => b;
const EXCHANGE: grpc.MethodDefinition<Buffer, Buffer> = {
  path: PeerServiceService.exchange.path,
  requestStream: true,
  responseStream: true,
  requestSerialize: bytesAsIs,
  requestDeserialize: bytesAsIs,
  responseSerialize: bytesAsIs,
  responseDeserialize: bytesAsIs,
};

type ClientStream = grpc.ClientDuplexStream<Buffer, Buffer>;
type ServerStream = grpc.ServerDuplexStream<Buffer, Buffer>;
type Stream = ClientStream | ServerStream;

interface PeerLink {
  readonly queue: PeerQueue;
  /** The stream messages go out on; its handshake is done. */
  stream: Stream | undefined;
  /** A stream we dialed that waits for the peer's hello. */
  dialing: ClientStream | undefined;
  client: grpc.Client | undefined;
  /** A frame is written to `stream` and its write has not completed. */
  writing: boolean;
  backoffMs: number;
  redial: NodeJS.Timeout | undefined;
}

/** The shared encoder keeps its buffer across messages up to this size (a larger one gets a fresh encoder after it). */
const SHARED_WRITER_MAX_BYTES = 64 * 1024;
const MIN_BACKOFF_MS = 50;
// A restarted peer must be reachable again at once: only one side of a pair dials, and with a 2 s
// cap the failover benchmark saw a restarted node unreachable (and elections slow) for up to 2 s.
const MAX_BACKOFF_MS = 250;
const COMMON_OPTIONS = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.max_receive_message_length': MAX_WIRE_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_WIRE_MESSAGE_BYTES,
};
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  ...COMMON_OPTIONS,
  // Reconnects are ours (with backoff); keep the channel's own short.
  'grpc.initial_reconnect_backoff_ms': MIN_BACKOFF_MS,
  'grpc.max_reconnect_backoff_ms': MAX_BACKOFF_MS,
  // What this end may receive before it must read (see http2-windows.ts for the server side).
  'grpc-node.flow_control_window': STREAM_WINDOW_BYTES,
};
// The server's keepalive (ping every 10 s, drop the connection 5 s later
// without an answer) also ends connections of clients that stopped reading.
const SERVER_OPTIONS: grpc.ServerOptions = {
  ...COMMON_OPTIONS,
  'grpc.max_concurrent_streams': MAX_STREAMS_PER_CONNECTION,
};

/** What a hello said, or why it is refused (a DropCounter reason and a detail). */
type HelloCheck =
  | { readonly kind: 'ok'; readonly peer: NodeId }
  | { readonly kind: 'refused'; readonly reason: string; readonly detail: string };

export class GrpcTransport<M> implements Transport<M> {
  private readonly links = new Map<NodeId, PeerLink>();
  private handler: (from: NodeId, message: M) => void = () => {};
  private server: grpc.Server | undefined;
  private flushQueued = false;
  private closed = false;
  /** A frame with no messages: heads every frame we send. */
  private readonly header: Buffer;
  /** The largest queue entry a frame can carry alone within MAX_WIRE_MESSAGE_BYTES. */
  private readonly maxEntryBytes: number;
  private readonly maxFrameMessages: number;
  private readonly maxFrameBytes: number;
  /** Reused for every message: a fresh encoder per message costs about twice the time. */
  private writer = new BinaryWriter();
  readonly stats: TransportStats = { droppedMessages: 0, droppedBytes: 0, oversizedMessages: 0 };
  /** What arrived and was dropped as invalid: refused handshakes, frames, messages. */
  readonly invalid = new DropCounter();
  /** The port actually bound (useful with port 0). */
  port = 0;

  private constructor(private readonly options: GrpcTransportOptions<M>) {
    this.header = encodeFrame(PeerFrame.encode({ from: options.self, messages: [], hello: undefined }).finish());
    this.maxEntryBytes = MAX_WIRE_MESSAGE_BYTES - this.header.length;
    this.maxFrameMessages = options.maxFrameMessages ?? DEFAULT_MAX_FRAME_MESSAGES;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    assert(this.maxFrameMessages >= 1, 'maxFrameMessages >= 1');
    assert(this.maxFrameBytes >= 1 && this.maxFrameBytes <= this.maxEntryBytes, 'maxFrameBytes within the wire limit');
  }

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
    // Only to a peer we may dial or one whose stream is open: a queue for anybody else would never drain.
    if (!this.options.peers.has(to) && this.links.get(to)?.stream === undefined) {
      this.countDropped(messages.length, 0);
      return;
    }
    const link = this.link(to);
    for (const m of messages) {
      const entry = this.encode(m);
      if (entry.length > this.maxEntryBytes) {
        this.stats.oversizedMessages++;
        this.countDropped(1, entry.length);
        continue;
      }
      const dropped = link.queue.push(entry);
      this.countDropped(dropped.messages, dropped.bytes);
    }
    if (link.stream === undefined && link.dialing === undefined && link.redial === undefined && this.dials(to)) this.dial(to);
    this.queueFlush();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const link of this.links.values()) {
      if (link.redial !== undefined) clearTimeout(link.redial);
      link.stream?.end();
      link.dialing?.cancel();
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

  /** The bytes a frame holds for `m`: its field in PeerFrame, tag and length included. */
  private encode(m: M): Uint8Array {
    const wire = this.options.codec.toWire(m);
    let entry: Uint8Array;
    try {
      entry = PeerFrame.encode({ from: '', messages: [wire], hello: undefined }, this.writer).finish(); // finish() copies out and resets
    } catch (err) {
      this.writer = new BinaryWriter(); // left mid-message
      throw err;
    }
    if (entry.length > SHARED_WRITER_MAX_BYTES) this.writer = new BinaryWriter();
    return entry;
  }

  private countDropped(messages: number, bytes: number): void {
    this.stats.droppedMessages += messages;
    this.stats.droppedBytes += bytes;
  }

  private dials(peer: NodeId): boolean {
    if (!this.options.peers.has(peer)) return false;
    return this.options.listen === undefined || this.options.self < peer;
  }

  private async listen(address: string): Promise<void> {
    widenServerWindows();
    const server = new grpc.Server(SERVER_OPTIONS);
    server.addService({ exchange: EXCHANGE }, { exchange: (call: ServerStream) => this.accept(call) });
    for (const s of this.options.services ?? []) server.addService(s.definition, s.implementation);
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(new Error(`cannot listen on ${address}: ${err.message}`)) : resolve(port),
      );
    });
    this.server = server;
  }

  /** An inbound stream: it carries messages once its first frame is a valid hello, which we answer. */
  private accept(call: ServerStream): void {
    let peer: NodeId | undefined;
    let refused = false;
    const refuse = (reason: string, detail: string) => {
      refused = true;
      clearTimeout(timeout);
      this.invalid.count(reason, detail);
      // grpc-js sends an error emitted on a server stream as the call's status.
      call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: `peer handshake refused (${reason})` });
    };
    const ms = this.options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const timeout = setTimeout(() => refuse('handshake-timeout', `no hello within ${ms} ms from ${call.getPeer()}`), ms);
    call.on('data', (bytes: Buffer) => {
      if (refused) return;
      if (peer !== undefined) {
        this.receive(peer, bytes);
        return;
      }
      const hello = this.checkHello(bytes, undefined);
      if (hello.kind === 'refused') {
        refuse(hello.reason, `${hello.detail} (from ${call.getPeer()})`);
        return;
      }
      clearTimeout(timeout);
      peer = hello.peer;
      const link = this.link(peer);
      link.stream?.end(); // the peer reconnected: its older stream is dead or dying
      call.write(this.helloTo(peer));
      this.attach(link, call);
    });
    const detach = () => {
      clearTimeout(timeout);
      if (peer !== undefined) this.detach(peer, call);
    };
    call.on('end', () => {
      detach();
      call.end();
    });
    call.on('error', detach);
    call.on('close', detach);
  }

  /** Opens a stream to `peer`: our hello first, then nothing until its answer's hello checks out. */
  private dial(peer: NodeId): void {
    if (this.closed) return;
    const link = this.link(peer);
    link.redial = undefined;
    const address = this.options.peers.get(peer);
    assert(address !== undefined);
    link.client ??= new grpc.Client(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    const call = link.client.makeBidiStreamRequest(EXCHANGE.path, bytesAsIs, bytesAsIs);
    link.dialing = call;
    call.write(this.helloTo(peer));
    const ms = this.options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const timeout = setTimeout(() => {
      if (link.dialing !== call) return;
      this.invalid.count('handshake-timeout', `${peer} at ${address} sent no hello within ${ms} ms`);
      call.cancel();
    }, ms);
    call.on('data', (bytes: Buffer) => {
      if (link.stream === call) {
        this.receive(peer, bytes);
        return;
      }
      if (link.dialing !== call) return;
      clearTimeout(timeout);
      const hello = this.checkHello(bytes, peer);
      if (hello.kind === 'refused') {
        this.invalid.count(hello.reason, `${hello.detail} (at ${address})`);
        call.cancel(); // redials after a backoff
        return;
      }
      link.dialing = undefined;
      link.backoffMs = MIN_BACKOFF_MS;
      this.attach(link, call);
    });
    const lost = (err?: grpc.ServiceError) => {
      clearTimeout(timeout);
      if (link.stream !== call && link.dialing !== call) return;
      if (link.dialing === call && err?.code === grpc.status.PERMISSION_DENIED) {
        this.invalid.count('handshake-refused', `${peer} at ${address} refused our hello: ${err.details}`);
      }
      if (link.dialing === call) link.dialing = undefined;
      this.detach(peer, call);
      link.redial = setTimeout(() => this.dial(peer), link.backoffMs);
      link.backoffMs = Math.min(link.backoffMs * 2, MAX_BACKOFF_MS);
    };
    call.on('error', lost);
    call.on('end', () => lost());
    call.on('close', () => lost());
  }

  private attach(link: PeerLink, stream: Stream): void {
    link.stream = stream;
    link.writing = false;
    this.queueFlush();
  }

  private detach(peer: NodeId, stream: Stream): void {
    const link = this.links.get(peer);
    if (link?.stream === stream) link.stream = undefined;
  }

  /** The frame that opens our side of a stream with `peer`. */
  private helloTo(peer: NodeId): Buffer {
    const hello = { clusterId: this.options.clusterId, to: peer };
    return encodeFrame(PeerFrame.encode({ from: this.options.self, messages: [], hello }).finish());
  }

  /**
   * Checks the first frame of a stream: a hello, alone, naming our cluster
   * and us; from the node we dialed (`dialed`), or else from a node that may
   * open a stream to us.
   */
  private checkHello(bytes: Buffer, dialed: NodeId | undefined): HelloCheck {
    const frame = this.decode(bytes);
    if (frame === undefined) return refused('handshake-missing', 'the first frame does not decode');
    const from = quote(frame.from);
    const hello = frame.hello;
    if (hello === undefined || frame.messages.length > 0) {
      return refused('handshake-missing', `the first frame from ${from} is not a hello alone`);
    }
    if (hello.clusterId !== this.options.clusterId) {
      return refused('handshake-wrong-cluster', `${from} is of cluster ${quote(hello.clusterId)}, not ${this.options.clusterId}`);
    }
    if (hello.to !== this.options.self) {
      return refused('handshake-wrong-node', `${from} means to reach ${quote(hello.to)}, not ${this.options.self}`);
    }
    const peer = parseNodeId(frame.from);
    if (dialed !== undefined) {
      return peer === dialed ? { kind: 'ok', peer } : refused('handshake-wrong-node', `dialed ${dialed}, answered by ${from}`);
    }
    if (peer === undefined || peer === this.options.self || !this.options.admits(peer)) {
      return refused('handshake-not-member', `${from} may not open a stream to ${this.options.self}`);
    }
    if (this.dials(peer)) {
      // Of two servers only the smaller id dials; a stream from the larger would replace the one we opened.
      return refused('handshake-wrong-direction', `${peer} opened a stream, but ${this.options.self} dials it`);
    }
    return { kind: 'ok', peer };
  }

  /** A received frame, or undefined if its bytes are not one. */
  private decode(bytes: Buffer): PeerFrame | undefined {
    try {
      return PeerFrame.decode(bytes);
    } catch {
      return undefined;
    }
  }

  /** A frame on `from`'s stream after the handshake: its valid messages go to the handler. */
  private receive(from: NodeId, bytes: Buffer): void {
    const frame = this.decode(bytes);
    if (frame === undefined) {
      this.invalid.count('frame-undecodable', `a frame of ${bytes.length} bytes from ${from} does not decode`);
      return;
    }
    if (frame.hello !== undefined) {
      this.invalid.count('frame-repeated-hello', `a second hello from ${from}`);
      return;
    }
    if (frame.from !== from) {
      this.invalid.count('frame-wrong-sender', `a frame from ${quote(frame.from)} on the stream of ${from}`);
      return;
    }
    for (const w of frame.messages) {
      let m: M;
      try {
        m = this.options.codec.fromWire(w);
      } catch (err) {
        if (!(err instanceof WireError)) throw err; // a bug of ours, not the peer's
        this.invalid.count('message-undecodable', `from ${from}: ${err.message}`);
        continue;
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
    const stream = link.stream;
    if (stream === undefined || link.writing || link.queue.length === 0) return;
    const entries = takeFrame(link.queue, this.maxFrameMessages, this.maxFrameBytes);
    this.write(link, stream, Buffer.concat([this.header, ...entries]));
  }

  /**
   * Writes one frame; the next waits for its completion (grpc-js calls back
   * once HTTP/2 took the bytes, i.e. within flow control), so a slow peer
   * holds one frame here and the rest stays in the bounded queue.
   */
  private write(link: PeerLink, stream: Stream, frame: Buffer): void {
    assert(frame.length <= MAX_WIRE_MESSAGE_BYTES);
    link.writing = true;
    stream.write(frame, () => {
      if (link.stream !== stream) return;
      link.writing = false;
      this.queueFlush();
    });
  }

  private link(peer: NodeId): PeerLink {
    let link = this.links.get(peer);
    if (link === undefined) {
      link = {
        queue: new PeerQueue({
          maxMessages: this.options.maxQueueMessages ?? DEFAULT_MAX_QUEUE_MESSAGES,
          maxBytes: this.options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES,
        }),
        stream: undefined,
        dialing: undefined,
        client: undefined,
        writing: false,
        backoffMs: MIN_BACKOFF_MS,
        redial: undefined,
      };
      this.links.set(peer, link);
    }
    return link;
  }
}

function encodeFrame(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const refused = (reason: string, detail: string): HelloCheck => ({ kind: 'refused', reason, detail });

/** A string a peer sent, quoted and cut short, for a log line. */
const quote = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);
