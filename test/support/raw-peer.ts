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

export const paxosMessage = (body: paxos.PaxosMessage['body']): PeerMessage => ({ body: { $case: 'paxos', value: { body } } });

export const p1a = (round: number, leader: string, fromSlot = 0): PeerMessage =>
  paxosMessage({ $case: 'p1a', value: { ballot: { round, leader }, fromSlot } });

export class RawPeer {
  /** Frames the node sent on this stream, decoded (undecodable ones are kept out). */
  readonly received: PeerFrame[] = [];
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
      try {
        this.received.push(PeerFrame.decode(b));
      } catch {
        // not ours to judge
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
    while (this.received.length === 0) {
      if (ended) throw new Error(`stream ended before the node's hello (status ${await this.status})`);
      if (Date.now() > deadline) throw new Error('no hello from the node');
      await new Promise((r) => setTimeout(r, 5));
    }
    const hello = this.received[0];
    if (hello?.hello === undefined) throw new Error('the node answered without a hello');
    return hello;
  }

  close(): void {
    this.stream.cancel();
    if (this.ownsClient) this.client.close();
  }
}
