// A raw peer stream for tests that speak to a node's peer port as a forger
// would: any first frame, any frames after it, writes paced by the stream's
// flow control, and the status the node ends the stream with.
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type * as paxos from '../../src/gen/shardpax/v1/paxos.js';
import { PeerFrame, type PeerHello, type PeerMessage, PeerServiceService } from '../../src/gen/shardpax/v1/peer.js';

const asIs = (b: Buffer) => b;

export function frameBytes(from: string, messages: PeerMessage[], hello?: PeerHello): Buffer {
  return Buffer.from(PeerFrame.encode({ from, messages, hello }).finish());
}

/** A Paxos message for the replica of `group` (the KV group of a LocalCluster by default). */
export const paxosMessage = (body: paxos.PaxosMessage['body'], group = 1): PeerMessage => ({ body: { $case: 'paxos', value: { body } }, group });

export const p1a = (round: number, leader: string, fromSlot = 0): PeerMessage =>
  paxosMessage({ $case: 'p1a', value: { ballot: { round, leader }, fromSlot } });

export class RawPeer {
  /** The first frame the node sent on this stream (its hello), if it decodes. */
  first: PeerFrame | undefined;
  /** Frames the node sent on this stream (a fuzz run makes it answer a lot: only counted). */
  framesReceived = 0;
  /** The status code the stream ended with. */
  readonly status: Promise<number>;
  private readonly stream: grpc.ClientDuplexStream<Buffer, Buffer>;

  constructor(
    private readonly client: grpc.Client,
    /** Whether it owns (and closes) the client. */
    private readonly ownsClient: boolean,
  ) {
    this.stream = client.makeBidiStreamRequest<Buffer, Buffer>(PeerServiceService.exchange.path, asIs, asIs);
    this.stream.on('error', () => {}); // the status says it
    this.stream.on('data', (b: Buffer) => {
      if (this.framesReceived++ > 0) return;
      try {
        this.first = PeerFrame.decode(b);
      } catch {
        // handshake() says so
      }
    });
    this.status = new Promise((resolve) => this.stream.on('status', (s: grpc.StatusObject) => resolve(s.code)));
  }

  /** A stream over a connection of its own. */
  static open(address: string): RawPeer {
    return new RawPeer(new grpc.Client(address, grpc.credentials.createInsecure()), true);
  }

  /** Writes one frame, waiting while the stream's buffer is full. */
  async write(frame: Buffer): Promise<void> {
    if (!this.stream.write(frame)) await once(this.stream, 'drain');
  }

  /** Resolves once the node answered with its hello; rejects if the stream ends first. */
  async handshake(timeoutMs = 5_000): Promise<PeerFrame> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    void this.status.then(() => (ended = true));
    while (this.framesReceived === 0) {
      if (ended) throw new Error(`stream ended before the node's hello (status ${await this.status})`);
      if (Date.now() > deadline) throw new Error('no hello from the node');
      await new Promise((r) => setTimeout(r, 5));
    }
    const first = this.first;
    if (first?.hello === undefined) throw new Error('the node answered without a hello');
    return first;
  }

  close(): void {
    this.stream.cancel();
    if (this.ownsClient) this.client.close();
  }
}
