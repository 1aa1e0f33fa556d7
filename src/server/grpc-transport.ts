// gRPC adapter of the Transport port (DESIGN.md 1, 3). One bidirectional
// stream per peer pair: of two servers the one with the smaller id dials; a
// node with no address of its own (a client) dials every server it talks to
// and is answered on the same stream. Messages queue per peer, each encoded
// once when queued; the queue is bounded in messages and in bytes (the
// oldest are dropped past a bound, which the protocols tolerate) and leaves
// as frames bounded the same way, one write in flight per stream. So a slow
// or unreachable peer costs at most its queue plus one frame. Received
// frames that do not decode are counted and dropped, like lost ones.
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import * as grpc from '@grpc/grpc-js';
import { assert } from '../core/assert.js';
import { type NodeId, nodeId } from '../core/ids.js';
import type { Transport } from '../core/transport.js';
import { PeerFrame, type PeerMessage, PeerServiceService } from '../gen/shardpax/v1/peer.js';
import { PeerQueue, takeFrame } from './frame-queue.js';

/** Maps a layer's messages to and from the wire's PeerMessage. */
export interface WireCodec<M> {
  toWire(message: M): PeerMessage;
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

export interface GrpcTransportOptions<M> {
  readonly self: NodeId;
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
  /** Further services (client, admin) served on the same port. */
  readonly services?: ReadonlyArray<{
    readonly definition: grpc.ServiceDefinition;
    readonly implementation: grpc.UntypedServiceImplementation;
  }>;
}

/** Counters of what the transport dropped; they only grow. */
export interface TransportStats {
  /** Messages dropped unsent: past a queue bound, or too large for any frame. */
  droppedMessages: number;
  droppedBytes: number;
  /** Of those, messages larger than a frame may be (a protocol bug). */
  oversizedMessages: number;
  /** Received frames dropped whole: undecodable, or not from the stream's peer. */
  malformedFrames: number;
  /** Received messages the codec refused, dropped. */
  malformedMessages: number;
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

type Stream = grpc.ClientDuplexStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;

interface PeerLink {
  readonly queue: PeerQueue;
  stream: Stream | undefined;
  client: grpc.Client | undefined;
  /** A frame is written to `stream` and its write has not completed. */
  writing: boolean;
  backoffMs: number;
  redial: NodeJS.Timeout | undefined;
}

/** The shared encoder keeps its buffer across messages up to this size (a larger one gets a fresh encoder after it). */
const SHARED_WRITER_MAX_BYTES = 64 * 1024;
const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2000;
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
};
// The server's keepalive (ping every 10 s, drop the connection 5 s later
// without an answer) also ends connections of clients that stopped reading.
const SERVER_OPTIONS: grpc.ServerOptions = {
  ...COMMON_OPTIONS,
  'grpc.max_concurrent_streams': MAX_STREAMS_PER_CONNECTION,
};

export class GrpcTransport<M> implements Transport<M> {
  private readonly links = new Map<NodeId, PeerLink>();
  private handler: (from: NodeId, message: M) => void = () => {};
  private server: grpc.Server | undefined;
  private flushQueued = false;
  private closed = false;
  /** A frame with no messages: introduces us on a new stream, and heads every frame. */
  private readonly header: Buffer;
  /** The largest queue entry a frame can carry alone within MAX_WIRE_MESSAGE_BYTES. */
  private readonly maxEntryBytes: number;
  private readonly maxFrameMessages: number;
  private readonly maxFrameBytes: number;
  /** Reused for every message: a fresh encoder per message costs about twice the time. */
  private writer = new BinaryWriter();
  readonly stats: TransportStats = {
    droppedMessages: 0,
    droppedBytes: 0,
    oversizedMessages: 0,
    malformedFrames: 0,
    malformedMessages: 0,
  };
  /** The port actually bound (useful with port 0). */
  port = 0;

  private constructor(private readonly options: GrpcTransportOptions<M>) {
    this.header = encodeFrame(PeerFrame.encode({ from: options.self, messages: [] }).finish());
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

  /** The bytes a frame holds for `m`: its field in PeerFrame, tag and length included. */
  private encode(m: M): Uint8Array {
    const wire = this.options.codec.toWire(m);
    let entry: Uint8Array;
    try {
      entry = PeerFrame.encode({ from: '', messages: [wire] }, this.writer).finish(); // finish() copies out and resets
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
    const server = new grpc.Server(SERVER_OPTIONS);
    server.addService({ exchange: EXCHANGE }, { exchange: (call: Stream) => this.accept(call) });
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
    call.on('data', (bytes: Buffer) => {
      const frame = this.decode(bytes);
      if (peer === undefined) {
        const named = frame === undefined ? undefined : validNodeId(frame.from);
        if (named === undefined) {
          if (frame !== undefined) this.stats.malformedFrames++;
          call.destroy(new Error('first frame must name a valid node id'));
          return;
        }
        peer = named;
        const link = this.link(peer);
        link.stream?.end();
        this.attach(link, call);
      }
      if (frame !== undefined) this.receive(peer, frame);
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
    link.client ??= new grpc.Client(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    const call = link.client.makeBidiStreamRequest(EXCHANGE.path, bytesAsIs, bytesAsIs);
    this.attach(link, call);
    this.write(link, call, this.header); // introduces us
    call.on('data', (bytes: Buffer) => {
      link.backoffMs = MIN_BACKOFF_MS;
      const frame = this.decode(bytes);
      if (frame !== undefined) this.receive(peer, frame);
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
    link.writing = false;
    this.queueFlush();
  }

  private detach(peer: NodeId, stream: Stream): void {
    const link = this.links.get(peer);
    if (link?.stream === stream) link.stream = undefined;
  }

  /** A received frame, or undefined (counted) if its bytes are not one. */
  private decode(bytes: Buffer): PeerFrame | undefined {
    try {
      return PeerFrame.decode(bytes);
    } catch {
      this.stats.malformedFrames++;
      return undefined;
    }
  }

  private receive(from: NodeId, frame: PeerFrame): void {
    if (frame.from !== from) {
      this.stats.malformedFrames++; // a stream carries one peer's frames only
      return;
    }
    for (const w of frame.messages) {
      let m: M;
      try {
        m = this.options.codec.fromWire(w);
      } catch {
        this.stats.malformedMessages++; // dropped like a lost message
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

function validNodeId(s: string): NodeId | undefined {
  try {
    return nodeId(s);
  } catch {
    return undefined;
  }
}
